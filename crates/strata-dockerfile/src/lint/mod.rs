//! Build checks (BuildKit lint rules) over a parsed Dockerfile.
