//! The bucket's layout contract, shared by the storer (writes it) and the reloader and tools (read it):
//! object names ([`ObjectName`]), the "file written" event ([`FileWrittenEvent`]), the key-index
//! sidecars ([`index`]), the catalog ([`catalog`]), and what a reader selects ([`Selection`]).
//! Specified in `docs/file-format.md`.
#![warn(missing_docs)]

pub mod catalog;
mod event;
pub mod index;
mod name;
mod selection;

pub use event::{FileWrittenEvent, FileWrittenKey};
pub use name::{NameError, ObjectName};
pub use selection::{Selection, SelectionError};
