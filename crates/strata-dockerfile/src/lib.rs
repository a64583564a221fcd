//! Dockerfile parser, shell-word expansion, stage planning and build checks (pure)
