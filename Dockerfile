# The image profile:<version>: the static executable and nothing else. `cargo xtask dist --image`
# builds it with target/dist/ as the context. It runs as root with the host's view it is given
# (README, "Install": the image); see there for the `docker run` options it needs.
FROM scratch
ARG VERSION
COPY profile-${VERSION}-x86_64-linux /usr/local/bin/profile
# Tells profile it runs in this image, to name the docker run options it lacks.
ENV PROFILE_IMAGE=1
ENTRYPOINT ["/usr/local/bin/profile"]
