//! The options several subcommands share, and how they become the library's plain values:
//! what is recorded and where its report goes, how a profile is written, the base and bound a
//! profile is learned within; durations; profiles read with their warnings.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, ValueEnum, builder::PossibleValue};

use crate::{
    formats::{self, DefaultAction, Format, Rendering},
    hardening,
    names::Arch,
    output,
    report::{Render, Report},
    seccomp::{Base, LearnArgs, Profile},
    watch::Per,
};

/// Lets clap take a library enum by the names given, with their help.
macro_rules! value_enum {
    ($t:ty { $($variant:ident => $name:literal: $help:literal,)* }) => {
        impl ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(<$t>::$variant),*]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(<$t>::$variant => PossibleValue::new($name).help($help),)*
                })
            }
        }
    };
}

value_enum!(Format {
    Docker => "docker": "Docker's seccomp JSON (Podman takes it too)",
    Oci => "oci": "The OCI runtime-spec `linux.seccomp` object (JSON)",
    K8s => "k8s": "A Kubernetes Security Profiles Operator `SeccompProfile` manifest (YAML)",
});

value_enum!(DefaultAction {
    Errno => "errno": "Fail them with EPERM (enforcing)",
    Log => "log": "Allow them and have the kernel log them (SCMP_ACT_LOG): complain mode for rollouts",
});

value_enum!(LearnArgs {
    None => "none": "Learn no arguments: the bound's argument rules are kept as they are",
    Default => "default": "socket's family and type, personality's persona",
    Strict => "strict": "Also ioctl's request and prctl's option",
});

value_enum!(Per {
    Image => "image": "One profile per image: replicas and restarts merged",
    Service => "service": "One per compose service (`com.docker.compose.project` / `service` labels); containers without them by image",
    Container => "container": "One per container",
    Workload => "workload": "One per Kubernetes workload's container (`<namespace>-<workload>-<container>`): replicas and restarts merged (the default with --engine cri)",
    Pod => "pod": "One per pod's container (`<namespace>-<pod>-<container>`): restarts merged",
});

/// How a report is printed: shared by the commands that print one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Text,
    /// Markdown, fit for a CI job summary.
    Md,
    Json,
}

impl ReportFormat {
    /// `report` in this format.
    pub fn render(self, report: &impl Render) -> serde_json::Result<String> {
        Ok(match self {
            ReportFormat::Text => report.text(),
            ReportFormat::Md => report.markdown(),
            ReportFormat::Json => report.json()?,
        })
    }
}

/// Whether an output's missing directory may be made: shared by every command that writes files.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct MkdirArgs {
    /// Create the directory an output file goes in when it doesn't exist, the last one only
    /// (without it, or when the one above is missing too, the command refuses, as cp does).
    #[arg(long)]
    pub mkdir: bool,
}

impl MkdirArgs {
    /// Checks that `path` can be written, before anything runs.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        Ok(output::check_writable(path, self.mkdir)?)
    }
}

/// What is recorded and where the report goes: shared by the recording commands.
#[derive(Clone, Debug, Args)]
pub struct RecordArgs {
    /// Write the report here: .json for JSON, .md for Markdown, anything else as text.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// Also write a Markdown summary without what changes from run to run (calls, first
    /// programs, what each run added): to commit beside the profile, it changes only when the
    /// profile does.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<std::path::PathBuf>,
    /// Count every syscall in the cgroup, the runtime's own setup included, not only those made
    /// under the seccomp filter (for comparison: such a profile grants calls no filter checks).
    #[arg(long)]
    pub all_syscalls: bool,
    #[command(flatten)]
    pub mkdir: MkdirArgs,
}

impl RecordArgs {
    /// Checks that the report and the summary can be written, before anything runs.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        for path in self.report.iter().chain(self.summary.iter()) {
            self.mkdir.check(path)?;
        }
        Ok(())
    }

    /// Writes the report and the summary where they were asked for.
    pub fn write(&self, report: &Report) -> anyhow::Result<()> {
        if let Some(path) = &self.report {
            write_report(path, report)?;
        }
        if let Some(path) = &self.summary {
            output::write_atomic(path, report.summary_markdown().as_bytes())?;
        }
        Ok(())
    }
}

/// How a profile is written: shared by every command that writes one.
#[derive(Clone, Debug, Default, Args)]
pub struct ProfileFormatArgs {
    /// Profile format: docker (Docker's seccomp JSON, for docker/podman --security-opt),
    /// oci (the runtime-spec linux.seccomp object), k8s (a Security Profiles Operator
    /// SeccompProfile manifest). oci and k8s resolve Docker's per-capability conditions for
    /// Docker's default capabilities.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub format: Format,
    /// What the profile does with calls it doesn't list: errno (fail with EPERM) or log (allow
    /// and log them: complain mode for rollouts).
    #[arg(long, value_enum, default_value_t, value_name = "ACTION")]
    pub default_action: DefaultAction,
    /// metadata.name of the k8s manifest [default: the output file's name]
    #[arg(long, value_name = "NAME")]
    pub k8s_name: Option<String>,
    /// Platforms the profile must also hold on (amd64, arm64; comma-separated) [default: the
    /// host's alone]. For arm64, the aarch64 calls that do the work of what was allowed on
    /// x86_64 are derived (openat for open, ppoll for poll, …) in rules Docker keeps on arm64
    /// only, within the base there: the x86_64 side is unchanged.
    #[arg(long = "arch", value_delimiter = ',', value_name = "LIST")]
    pub arch: Vec<Arch>,
    /// With --format oci or k8s and several platforms: one file whose rules apply on all of
    /// them (x86_64 then also allows what aarch64 needs), instead of one file per platform
    /// (NAME.amd64.json, NAME.arm64.json).
    #[arg(long)]
    pub arch_union: bool,
}

impl ProfileFormatArgs {
    pub fn rendering(&self) -> Rendering {
        Rendering {
            format: self.format,
            default_action: self.default_action,
            k8s_name: self.k8s_name.clone(),
            k8s_namespace: None,
            k8s_labels: Default::default(),
            arches: self.arch.iter().copied().collect(),
            arch_union: self.arch_union,
        }
    }
}

/// The base a workload is trained under and what its profile stays within.
#[derive(Clone, Debug, Args)]
pub struct LearnOptions {
    /// The profile the workload is trained under and the learned profile replaces: it is
    /// never allowed anything this one forbids. `docker-default` (Docker's default, resolved
    /// for the container's capabilities), a profile file, or `allow-all` (no filter rules:
    /// to explore what an application tries; the learned profile still stays within Docker's
    /// default unless --allow-beyond-default).
    #[arg(long, value_name = "PROFILE", default_value = "docker-default")]
    pub base: String,
    /// Which syscall arguments are learned in the kernel: none; default (socket's family and
    /// type, personality's persona); strict (also ioctl's request and prctl's option).
    #[arg(long, value_enum, default_value_t, value_name = "SET")]
    pub learn_args: LearnArgs,
    /// With --base allow-all: let the learned profile allow what Docker's default forbids.
    #[arg(long)]
    pub allow_beyond_default: bool,
}

impl LearnOptions {
    /// Loads the base (before any container is created: a file that doesn't parse stops here
    /// with its line and column).
    /// Refuses --allow-beyond-default where it would change nothing.
    pub fn base(&self) -> anyhow::Result<Base> {
        let base = load_base(&self.base)?;
        if self.allow_beyond_default && !base.can_go_beyond_default() {
            anyhow::bail!(
                "--allow-beyond-default changes nothing with --base {}: only --base allow-all lets a profile be learned beyond Docker's default (a profile file is its own bound)",
                self.base
            );
        }
        Ok(base)
    }
}

/// The base `name` names, with a profile file's warnings said.
pub fn load_base(name: &str) -> anyhow::Result<Base> {
    let base = formats::read_base(name).with_context(|| format!("--base {name}"))?;
    if let Base::Profile { profile, .. } = &base {
        warn(Path::new(name), profile);
    }
    Ok(base)
}

/// Reads a profile in any format `profile` writes (`docker-default` for Docker's default, `-`
/// for stdin) and warns about names its architectures don't know (Docker ignores them
/// silently) and errnos the kernel caps.
pub fn load_profile(path: &Path) -> anyhow::Result<Profile> {
    let profile = formats::read_profile(path)?;
    // Docker's own default names other architectures' calls on purpose.
    if !formats::is_docker_default(path) {
        warn(path, &profile);
    }
    Ok(profile)
}

fn warn(path: &Path, profile: &Profile) {
    for warning in profile.warnings() {
        eprintln!(
            "profile: warning: {}: {warning}",
            formats::origin(path).display()
        );
    }
}

/// Writes a report (atomically) in the format its file name's extension names: `.json`,
/// `.md`, anything else as text.
pub fn write_report(path: &Path, report: &impl Render) -> anyhow::Result<()> {
    Ok(crate::report::write(path, report)?)
}

/// The longest `--duration`: a year.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `30s`, `2m`, `1h`, `500ms`, `1h 30m` (humantime's syntax), or plain seconds (`1.5`): more
/// than zero and at most a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) if (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => Duration::MAX,
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?}: {e} (use e.g. 30s, 2m, 500ms, 1h)"))?,
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    if d > MAX_DURATION {
        return Err(format!("{s:?}: must be at most a year"));
    }
    Ok(d)
}

/// A grace period: a duration as [`parse_duration`] takes it, or none at all (`0`, `0s`).
pub fn parse_grace(s: &str) -> Result<Duration, String> {
    let none = s.trim().parse::<f64>() == Ok(0.0)
        || humantime::parse_duration(s.trim()).is_ok_and(|d| d.is_zero());
    match none {
        true => Ok(Duration::ZERO),
        false => parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_timeout_is_a_duration_as_every_time_option_is() {
        use clap::Parser as _;
        let grace = |value: &str| {
            let cli = crate::cli::Cli::try_parse_from([
                "profile",
                "train",
                "--image",
                "x",
                "--stop-timeout",
                value,
            ])
            .map_err(|e| e.to_string())?;
            match cli.command {
                crate::cli::Command::Train(args) => Ok(args.container.stop_timeout),
                _ => Err("not train".to_string()),
            }
        };
        assert_eq!(grace("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(grace("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(grace("10"), Ok(Duration::from_secs(10)));
        assert_eq!(grace("0"), Ok(Duration::ZERO));
        assert_eq!(grace("0s"), Ok(Duration::ZERO));
        assert!(grace("-1s").is_err() && grace("20x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in [
            "",
            "s",
            "0",
            "0s",
            "-1s",
            "3x",
            "inf",
            "NaN",
            "400d",
            "99999999999999999999999",
            "99999999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn library_enums_take_their_names() {
        assert_eq!(Format::from_str("k8s", false), Ok(Format::K8s));
        assert_eq!(LearnArgs::from_str("strict", false), Ok(LearnArgs::Strict));
        assert_eq!(Per::from_str("service", false), Ok(Per::Service));
        assert_eq!(
            DefaultAction::from_str("log", false),
            Ok(DefaultAction::Log)
        );
        for f in Format::value_variants() {
            let name = f.to_possible_value().expect("named").get_name().to_string();
            assert_eq!(Format::from_str(&name, false).as_ref(), Ok(f));
        }
    }
}

/// The least-privilege recipe and where it is written: shared by train (and watch).
#[derive(Clone, Debug, Default, Args)]
pub struct HardeningArgs {
    /// Also learn the least-privilege recipe (the capabilities used, all others dropped; a
    /// read-only root filesystem with tmpfs where it wrote; no-new-privileges when no exec
    /// gained privileges; a non-root user when it needed none of root's), verify the workload
    /// under all of it with the profile, and write it here as JSON (with the docker run
    /// options that apply it). Written only when that run passed.
    #[arg(long, value_name = "FILE")]
    pub hardening: Option<PathBuf>,
    /// Also write the recipe as a compose override (docker-compose -f compose.yml -f FILE
    /// up); implies learning it.
    #[arg(long, value_name = "FILE")]
    pub compose_override: Option<PathBuf>,
    /// The service the compose override is for [default: the image's name]
    #[arg(long, value_name = "NAME", requires = "compose_override")]
    pub service: Option<String>,
    /// The compose file format version of the override (docker-compose 1 wants the stack's).
    #[arg(
        long,
        value_name = "V",
        default_value = "2.4",
        requires = "compose_override"
    )]
    pub compose_version: String,
    /// Also write the recipe as a Kubernetes strategic-merge patch of the workload's pod
    /// template (kubectl patch deployment NAME --patch-file FILE): its container's
    /// securityContext, the profile as Localhost, emptyDir volumes for the tmpfs; implies
    /// learning it.
    #[arg(long, value_name = "FILE")]
    pub k8s_patch: Option<PathBuf>,
    /// The container the patch is for [default: the image's name]
    #[arg(long, value_name = "NAME", requires = "k8s_patch")]
    pub k8s_container: Option<String>,
    /// The profile's path under kubelet's seccomp root, in the patch
    /// [default: profile/<the profile's file name>]
    #[arg(long, value_name = "PATH", requires = "k8s_patch")]
    pub localhost_profile: Option<String>,
}

impl HardeningArgs {
    /// Whether a recipe is to be learned.
    pub fn wanted(&self) -> bool {
        self.hardening.is_some() || self.compose_override.is_some() || self.k8s_patch.is_some()
    }

    /// The outputs, named after `image` where no name was given, the patch pointing at
    /// `profile`'s file.
    pub fn outputs(&self, image: &str, profile: Option<&Path>) -> hardening::write::Outputs {
        let short = hardening::render::workload_name(image);
        hardening::write::Outputs {
            recipe: self.hardening.clone(),
            compose: self.compose_override.clone(),
            service: self.service.clone().unwrap_or_else(|| short.clone()),
            compose_version: self.compose_version.clone(),
            k8s: self.k8s_patch.clone(),
            container: self.k8s_container.clone().unwrap_or(short),
            localhost_profile: self.localhost_profile.clone().or_else(|| {
                profile
                    .and_then(Path::file_name)
                    .map(|f| format!("profile/{}", f.to_string_lossy()))
            }),
        }
    }
}
