//! Overlay snapshotter and OCI-runtime executor
