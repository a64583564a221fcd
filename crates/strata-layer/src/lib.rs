//! Layer tars: apply safely, create deterministically, diff an overlay upperdir
