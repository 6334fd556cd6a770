//! An image's filesystem as the engine exports it (`docker save`): read without running it.
use futures_util::{Stream, StreamExt as _};

use super::{DockerError, Engine, Result, api};

impl Engine {
    /// The image as a tar stream of its layers and manifest, chunk by chunk; each chunk must
    /// come within the request limit.
    pub fn export_image(&self, image: &str) -> impl Stream<Item = Result<Vec<u8>>> + use<> {
        let action = format!("exporting image {image}");
        let limit = self.limits.request;
        let chunks = Box::pin(self.docker.export_image(image));
        futures_util::stream::unfold((chunks, false), move |(mut chunks, failed)| {
            let action = action.clone();
            async move {
                if failed {
                    return None;
                }
                match tokio::time::timeout(limit, chunks.next()).await {
                    Err(_) => {
                        let secs = limit.as_secs().max(1);
                        Some((Err(DockerError::Timeout { action, secs }), (chunks, true)))
                    }
                    Ok(None) => None,
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes.to_vec()), (chunks, false))),
                    Ok(Some(Err(err))) => Some((Err(api(action)(err)), (chunks, true))),
                }
            }
        })
    }
}
