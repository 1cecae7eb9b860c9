//! `ferrobase-storage`: S3-compatible object storage for Ferrobase.
//!
//! This crate will hold buckets and objects over the `object_store` crate (local files and
//! S3), the metadata the backends cannot keep, multipart uploads and change events (see the
//! storage issue and DESIGN.md). It has no code yet: the server exposes no storage routes until
//! it does.
