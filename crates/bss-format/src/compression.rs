use std::io::{self, BufRead, BufReader, Read, Write};
use std::str::FromStr;

/// Whole-file compression, shown by the object name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain JSON Lines, `.txt`: Mia-Platform's format, the default.
    #[default]
    None,
    /// gzip, `.txt.gz`.
    Gzip,
    /// zstd, `.txt.zst`: about as small as gzip at a fraction of its CPU.
    Zstd,
}

/// A compression name that is not one of `none`, `gzip`, `zstd`.
#[derive(Debug, thiserror::Error)]
#[error("unknown compression {0:?} (expected one of: none, gzip, zstd)")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zstd" => Ok(Self::Zstd),
            _ => Err(UnknownCompression(text.to_owned())),
        }
    }
}

impl Compression {
    /// All variants, for probing names whose compression is unknown.
    pub const ALL: [Compression; 3] = [Self::None, Self::Gzip, Self::Zstd];

    /// The name used in configuration and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The object name's extension, dot included.
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => ".txt",
            Self::Gzip => ".txt.gz",
            Self::Zstd => ".txt.zst",
        }
    }

    /// Splits a file name into its stem and compression, by extension.
    pub fn split_file_name(file_name: &str) -> Option<(&str, Compression)> {
        // Longest extensions first: ".txt" is a suffix of neither of the others, but stay explicit.
        [Self::Gzip, Self::Zstd, Self::None]
            .into_iter()
            .find_map(|c| file_name.strip_suffix(c.extension()).map(|stem| (stem, c)))
    }

    /// A streaming compressor into memory: only the compressed bytes are held, never the plain file.
    pub fn compressor(self) -> Compressor {
        self.compressor_for(0)
    }

    /// A compressor whose output is sized for about `plain_bytes` of input up front: a growing
    /// buffer doubles and copies itself, briefly holding up to three times the file, which many
    /// partitions sealing at once turn into a memory peak far above the budget.
    fn compressor_for(self, plain_bytes: usize) -> Compressor {
        // JSON lines compress about 4 to 10 times; reserving a quarter rarely needs to grow.
        let reserve = |ratio: usize| Vec::with_capacity(plain_bytes / ratio);
        Compressor(match self {
            Self::None => Inner::None(reserve(1)),
            Self::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                reserve(4),
                flate2::Compression::fast(),
            )),
            // Level 1: the storer must keep up with the topic; zstd-1 already beats gzip-6 on JSON.
            Self::Zstd => Inner::Zstd(
                zstd::stream::write::Encoder::new(reserve(4), 1).expect("zstd level 1 is valid"),
            ),
        })
    }

    /// Compresses a whole buffer in one call. For zstd this is much cheaper than streaming the same
    /// bytes: the input is not copied into the encoder's window, and the block compressor runs its
    /// fast path instead of the external-dictionary one that a window of separate chunks needs.
    pub fn compress(self, plain: &[u8]) -> Vec<u8> {
        match self {
            Self::Zstd => zstd::bulk::compress(plain, 1).expect("compressing into memory"),
            Self::None | Self::Gzip => {
                let mut compressor = self.compressor_for(plain.len());
                compressor.write(plain);
                compressor.finish()
            }
        }
    }

    /// Wraps a reader of stored bytes into a buffered reader of plain JSON Lines, streaming.
    pub fn decompress<'a, R: Read + 'a>(self, stored: R) -> io::Result<Box<dyn BufRead + 'a>> {
        Ok(match self {
            Self::None => Box::new(BufReader::with_capacity(64 * 1024, stored)),
            Self::Gzip => Box::new(BufReader::with_capacity(
                64 * 1024,
                flate2::read::MultiGzDecoder::new(stored),
            )),
            Self::Zstd => Box::new(BufReader::with_capacity(
                64 * 1024,
                zstd::stream::read::Decoder::new(stored)?,
            )),
        })
    }
}

/// See [`Compression::compressor`]. Writing into memory cannot fail, so the methods do not return errors.
pub struct Compressor(Inner);

enum Inner {
    None(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Compressor {
    /// Adds plain bytes.
    pub fn write(&mut self, plain: &[u8]) {
        let result = match &mut self.0 {
            Inner::None(out) => {
                out.extend_from_slice(plain);
                Ok(())
            }
            Inner::Gzip(encoder) => encoder.write_all(plain),
            Inner::Zstd(encoder) => encoder.write_all(plain),
        };
        result.expect("compressing into memory");
    }

    /// Ends the stream and returns the compressed bytes.
    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            Inner::None(out) => Ok(out),
            Inner::Gzip(encoder) => encoder.finish(),
            Inner::Zstd(encoder) => encoder.finish(),
        }
        .expect("compressing into memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_round_trips_and_names_its_extension() {
        let plain = b"{\"a\":1}\n{\"a\":2}\n".repeat(100);
        for c in Compression::ALL {
            let stored = c.compress(&plain);
            let mut back = Vec::new();
            c.decompress(&stored[..])
                .expect("reader")
                .read_to_end(&mut back)
                .expect("decompresses");
            assert_eq!(back, plain, "{c:?}");
            let name = format!("x{}", c.extension());
            assert_eq!(Compression::split_file_name(&name), Some(("x", c)));
            assert_eq!(c.as_str().parse::<Compression>().expect("parses"), c);
        }
        assert!("lz4".parse::<Compression>().is_err());
        assert_eq!(Compression::split_file_name("x.json"), None);
    }
}
