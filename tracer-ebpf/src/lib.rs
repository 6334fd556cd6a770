#![no_std]
// The programs live in main.rs; this target lets tracer list the crate as a build-dependency.
