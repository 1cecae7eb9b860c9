//! S3 XML request bodies: `CompleteMultipartUpload` and `Delete` (DeleteObjects).
//!
//! Ferrobase parses no S3 XML itself: the s3s crate deserialises these bodies before our
//! frontend (services/src/s3/frontend) sees the typed values. This target drives s3s's public
//! `xml` deserialisers the way its operations do (root element, then end of input).
//! Invariants: never panics; an accepted body whose ETags are well-formed entity tags serialises
//! back to XML that parses to the same value.
//!
//! Finding (s3s, not ours): an ETag element that is not a valid quoted entity tag is kept as
//! the raw text (`"abc` with a stray quote, a newline), and serialising it then yields XML
//! s3s itself refuses. Our frontend only compares part ETags with stored ones, so such a value
//! is simply an unknown part (InvalidPart); the target therefore checks the round trip only for
//! well-formed ETags. Likewise s3s writes an ETag's text unescaped (to keep literal quotes), so
//! an ETag holding `&` or `<` re-serialises to broken XML; those are skipped too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3s::dto::{CompletedMultipartUpload, Delete, ETag};
use s3s::xml::{Deserialize, Deserializer, Serialize, Serializer};

fn parse<'x, T: Deserialize<'x>>(xml: &'x [u8]) -> Option<T> {
    let mut d = Deserializer::new(xml);
    let value = T::deserialize(&mut d).ok()?;
    d.expect_eof().ok()?;
    Some(value)
}

/// `etagc` of RFC 9110: what may stand between an entity tag's quotes.
fn well_formed(etag: Option<&ETag>) -> bool {
    etag.is_none_or(|etag| {
        etag.value().bytes().all(|b| {
            b == 0x21 || ((0x23..=0x7e).contains(&b) && b != b'&' && b != b'<') || b >= 0x80
        })
    })
}

fn round_trip<T>(xml: &[u8], etags_well_formed: impl Fn(&T) -> bool)
where
    T: for<'x> Deserialize<'x> + Serialize + PartialEq + std::fmt::Debug,
{
    let Some(value) = parse::<T>(xml) else {
        return;
    };
    if !etags_well_formed(&value) {
        return;
    }
    let mut out = Vec::new();
    value
        .serialize(&mut Serializer::new(&mut out))
        .expect("a parsed body serialises");
    let again = parse::<T>(&out).unwrap_or_else(|| {
        panic!(
            "re-serialised body does not parse: {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(again, value, "round trip changed the body");
}

fuzz_target!(|data: &[u8]| {
    round_trip::<CompletedMultipartUpload>(data, |upload| {
        upload
            .parts
            .iter()
            .flatten()
            .all(|part| well_formed(part.e_tag.as_ref()))
    });
    round_trip::<Delete>(data, |delete| {
        delete
            .objects
            .iter()
            .all(|object| well_formed(object.e_tag.as_ref()))
    });
});
