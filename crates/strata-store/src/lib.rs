//! Content store (an OCI image layout), image index, snapshots and build-cache records
