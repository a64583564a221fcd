//! OCI distribution client: pull, push, auth
