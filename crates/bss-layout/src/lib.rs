//! The bucket's layout contract, shared by the storer (writes it) and the reloader and tools (read it):
//! object names ([`ObjectName`]) and the "file written" event ([`FileWrittenEvent`]).
//! Specified in `docs/file-format.md`.
#![warn(missing_docs)]

mod event;
pub mod index;
mod name;

pub use event::{FileWrittenEvent, FileWrittenKey};
pub use name::{NameError, ObjectName};
