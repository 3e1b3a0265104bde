//! Record headers as bytes, both ways.
//!
//! Kafka header keys are arbitrary bytes on the wire (non-Java clients send any), but rdkafka's safe
//! API types them as `&str` and panics on a key that is not UTF-8 (`Headers::try_get` unwraps
//! `CStr::to_str`): one such record would crash the storer on every restart. These two functions go
//! through librdkafka's C calls instead: the only `unsafe` code of the services.
//!
//! Limit (librdkafka's): `rd_kafka_header_get_all` returns a key as a NUL-terminated C string, so a
//! consumer sees a key only up to its first NUL byte. Producing keys with NUL bytes works (the length
//! is passed explicitly).
#![allow(unsafe_code)]

use std::ffi::{c_void, CStr};

use bss_format::Header;
use rdkafka::bindings as sys;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};

/// The headers of a consumed record, in order, keys and values byte for byte (see the module's note
/// on NUL bytes in keys), borrowed from the message.
pub fn header_slices<'m>(
    message: &'m BorrowedMessage<'_>,
) -> impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)> + 'm {
    let mut native = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is the live native message `message` borrows; librdkafka parses its
    // headers (once) into a list owned by the message and points `native` at it.
    let found = unsafe { sys::rd_kafka_message_headers(message.ptr(), &mut native) };
    let count = if found != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || native.is_null()
    {
        0
    } else {
        // SAFETY: `native` is owned by the message, valid while `message` is borrowed.
        unsafe { sys::rd_kafka_header_cnt(native) }
    };
    (0..count).filter_map(move |index| {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `index < count`; on success librdkafka points `name` at a NUL-terminated string and
        // `value` at `size` bytes (or null for a null value), both owned by the message, which the
        // returned slices borrow (`'m`).
        let error = unsafe {
            sys::rd_kafka_header_get_all(native, index, &mut name, &mut value, &mut size)
        };
        if error != sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        // SAFETY: see above.
        let key = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null()).then(|| {
            // SAFETY: `value` points at `size` readable bytes owned by the message.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }
        });
        Some((key, value))
    })
}

/// The headers of a consumed record, copied (see [`header_slices`]).
pub fn read_headers(message: &BorrowedMessage<'_>) -> Vec<Header> {
    header_slices(message)
        .map(|(key, value)| Header {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        })
        .collect()
}

/// Headers for a record to produce: `headers` as archived, then `extra` (name, value) pairs.
pub fn owned_headers(headers: &[Header], extra: &[(&str, &[u8])]) -> OwnedHeaders {
    let owned = OwnedHeaders::new_with_capacity(headers.len() + extra.len());
    // rdkafka represents a header list by a reference whose address *is* the native list
    // (`BorrowedHeaders` is a zero-sized view); it does not expose the pointer, so take the address.
    let native = std::ptr::from_ref(owned.as_borrowed())
        .cast::<sys::rd_kafka_headers_t>()
        .cast_mut();
    let pairs = headers
        .iter()
        .map(|h| (h.key.as_slice(), h.value.as_deref()))
        .chain(extra.iter().map(|(k, v)| (k.as_bytes(), Some(*v))));
    for (key, value) in pairs {
        let (value_ptr, value_len) = match value {
            Some(bytes) => (bytes.as_ptr().cast::<c_void>(), bytes.len() as isize),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `native` is the writable header list owned by `owned` (an `OwnedHeaders` is always
        // writable); librdkafka copies `key.len()` bytes of the key and `value_len` bytes of the value,
        // so no pointer is kept. The only error it returns is for a read-only list.
        unsafe {
            sys::rd_kafka_header_add(
                native,
                key.as_ptr().cast(),
                key.len() as isize,
                value_ptr,
                value_len,
            );
        }
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    /// Guards the address trick of [`owned_headers`] against a change of rdkafka's representation:
    /// what was added is what rdkafka's own accessors see.
    #[test]
    fn owned_headers_hold_keys_and_values_as_given() {
        let headers = owned_headers(
            &[
                Header {
                    key: b"a".to_vec(),
                    value: Some(b"1".to_vec()),
                },
                Header {
                    key: vec![0xff, 0xfe],
                    value: None,
                },
            ],
            &[("lineage", b"x")],
        );
        assert_eq!(headers.count(), 3);
        let first = headers.get(0);
        assert_eq!((first.key, first.value), ("a", Some(&b"1"[..])));
        let last = headers.get(2);
        assert_eq!((last.key, last.value), ("lineage", Some(&b"x"[..])));
    }
}
