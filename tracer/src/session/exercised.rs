//! What exercised a run, and so what a verification under it covers: the exercise, the HTTP
//! probe, or the container's own command alone; and the ports the image EXPOSEs that nothing
//! reached.
use serde::Serialize;

use super::run::{RecordedRun, RunOptions, Stop};

/// What exercised a recorded run: a verification shows that the paths it took work under the
/// profile, and says nothing of those it never took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exercised {
    /// In words: ``the exercise `CMD` ``, `the HTTP probe (57 requests)`, `nothing but the
    /// container's own command`.
    pub by: String,
    /// It was the training's own exercise, replayed by `train --verify`: the verdict covers
    /// what was learned, and no more.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub training_own: bool,
    /// The ports the image EXPOSEs that nothing reached.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unexercised: Vec<Unexercised>,
}

impl Exercised {
    /// What exercised `run`, made as `options` says; `exposed` are the ports the image EXPOSEs.
    pub fn of(options: &RunOptions, run: &RecordedRun, exposed: &[String]) -> Self {
        let never_ready = run.stop == Stop::NotReady || run.exited_before_ready;
        let by = match (&options.exercise, &run.probe) {
            (Some(_), _) if never_ready => {
                "nothing but the container's own command (the exercise never ran: the container was not ready)".into()
            }
            (Some(cmd), _) => format!("the exercise `{cmd}`"),
            (None, Some(probe)) => format!("the HTTP probe ({} requests)", probe.requests.len()),
            (None, None) if options.probe.is_some() => {
                "nothing but the container's own command (the HTTP probe never ran)".into()
            }
            (None, None) if run.stop == Stop::Duration => {
                "nothing but the container's own command, until --duration".into()
            }
            (None, None) => "nothing but the container's own command".into(),
        };
        Exercised {
            by,
            training_own: false,
            unexercised: unexercised(options, exposed),
        }
    }
}

/// A port the image EXPOSEs that nothing reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unexercised {
    /// `8080/tcp`.
    pub port: String,
    /// Published with `-p` (but not probed: `--probe none`, or not TCP).
    pub published: bool,
}

/// The ports the image EXPOSEs (`exposed`, `8080/tcp`) that a run as `options` says reaches
/// with nothing: none when there is an exercise (it may reach them any way it likes); the
/// published TCP ones are the probe's when it runs.
pub fn unexercised(options: &RunOptions, exposed: &[String]) -> Vec<Unexercised> {
    if options.exercise.is_some() {
        return Vec::new();
    }
    let published = |port: &str| options.container.ports.iter().any(|p| p.container == port);
    let mut out: Vec<Unexercised> = exposed
        .iter()
        .filter(|port| options.probe.is_none() || !(port.ends_with("/tcp") && published(port)))
        .map(|port| Unexercised {
            port: port.clone(),
            published: published(port),
        })
        .collect();
    out.sort_by(|a, b| a.port.cmp(&b.port));
    out.dedup();
    out
}

/// The ports nothing reached, and how to reach them, in words: `the image EXPOSEs 8080/tcp,
/// which was never published or probed: …`.
pub fn unexercised_words(ports: &[Unexercised]) -> Option<String> {
    let first = ports.first()?;
    let names = |published: bool| -> Vec<&str> {
        ports
            .iter()
            .filter(|p| p.published == published)
            .map(|p| p.port.as_str())
            .collect()
    };
    let mut parts = Vec::new();
    for (published, says) in [
        (false, "never published or probed"),
        (true, "published but never probed"),
    ] {
        let names = names(published);
        if !names.is_empty() {
            let which = if names.len() == 1 {
                "which was"
            } else {
                "which were"
            };
            parts.push(format!("{}, {which} {says}", names.join(", ")));
        }
    }
    let (number, protocol) = first.port.split_once('/').unwrap_or((&first.port, "tcp"));
    let publish = match protocol {
        "tcp" => format!("-p 127.0.0.1::{number}"),
        _ => format!("-p 127.0.0.1::{number}/{protocol}"),
    };
    let how = match (first.published, protocol) {
        (false, "tcp") => format!(
            "publish it with {publish} and the HTTP probe requests it, or give --exercise CMD"
        ),
        (false, _) => format!("publish it with {publish} and give --exercise CMD"),
        (true, "tcp") => "drop --probe none, or give --exercise CMD".into(),
        (true, _) => "give --exercise CMD".into(),
    };
    Some(format!(
        "the image EXPOSEs {}: nothing reached it from outside the container, so what serving it takes was never tried ({how})",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{docker::PortSpec, session::ProbeOptions};

    fn options(ports: &[&str], exercise: Option<&str>, probe: bool) -> RunOptions {
        let mut options = RunOptions::default();
        options.container.ports = ports
            .iter()
            .map(|p| p.parse::<PortSpec>().expect("a port"))
            .collect();
        options.exercise = exercise.map(String::from);
        options.probe = probe.then(ProbeOptions::default);
        options
    }

    #[test]
    fn an_exposed_port_nothing_reached_is_named_with_the_option_that_reaches_it() {
        let exposed = ["8080/tcp".to_string()];
        let nothing = unexercised(&options(&[], None, false), &exposed);
        assert_eq!(
            unexercised_words(&nothing).as_deref(),
            Some(
                "the image EXPOSEs 8080/tcp, which was never published or probed: nothing reached it from outside the container, so what serving it takes was never tried (publish it with -p 127.0.0.1::8080 and the HTTP probe requests it, or give --exercise CMD)"
            )
        );
        let probed = options(&["127.0.0.1::8080"], None, true);
        assert!(unexercised(&probed, &exposed).is_empty(), "the probe's");
        let exercised = options(&[], Some("true"), false);
        assert!(
            unexercised(&exercised, &exposed).is_empty(),
            "the exercise's"
        );
        let off = unexercised(&options(&["127.0.0.1::8080"], None, false), &exposed);
        assert!(
            unexercised_words(&off).is_some_and(|w| w
                .contains("8080/tcp, which was published but never probed")
                && w.contains("drop --probe none")),
            "{off:?}"
        );
        assert_eq!(unexercised_words(&[]), None);
    }
}
