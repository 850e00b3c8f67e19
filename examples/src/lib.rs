//! smi-mesh examples. The bookstore demo lives in [`bookstore`]; its binary is
//! `src/bin/bookstore.rs`.
#![forbid(unsafe_code)]

pub mod bookstore;
