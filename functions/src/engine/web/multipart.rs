//! `multipart/form-data` bodies read by `Request.formData()` and `Response.formData()`, parsed
//! by `multer` (the parser axum uses). The body is already whole in memory, so multer's stream
//! is one chunk and its futures complete without waiting; they are driven on the isolate's
//! thread with `futures::executor::block_on`.

use rquickjs::{ArrayBuffer, Ctx, Exception, Function, Object};

use super::natives::bytes;

pub fn install<'js>(ctx: &Ctx<'js>, natives: &Object<'js>) -> rquickjs::Result<()> {
    natives.set(
        "multipartParse",
        Function::new(ctx.clone(), multipart_parse)?,
    )?;
    Ok(())
}

/// One part: its field name, its file name and type when it is a file, and its bytes.
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: bytes::Bytes,
}

fn parse(content_type: &str, body: Vec<u8>) -> multer::Result<Vec<Part>> {
    let boundary = multer::parse_boundary(content_type)?;
    let stream = futures::stream::once(async move {
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body))
    });
    let mut multipart = multer::Multipart::new(stream, boundary);
    futures::executor::block_on(async move {
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let data = field.bytes().await?;
            parts.push(Part {
                name,
                file_name,
                content_type,
                data,
            });
        }
        Ok(parts)
    })
}

/// The parts of a `multipart/form-data` body (`body` a binary string) as
/// `[{name, value}]` for text fields and `[{name, filename, type, value: ArrayBuffer}]` for
/// files; a TypeError when it is not such a body, as `formData()` rejects.
fn multipart_parse<'js>(
    ctx: Ctx<'js>,
    content_type: String,
    body: String,
) -> rquickjs::Result<Vec<Object<'js>>> {
    let parts = match parse(&content_type, bytes(body, true)) {
        Ok(parts) => parts,
        Err(error) => {
            return Err(Exception::throw_type(
                &ctx,
                &format!("formData: the body is not valid multipart/form-data ({error})"),
            ));
        }
    };
    parts
        .into_iter()
        .map(|part| {
            let entry = Object::new(ctx.clone())?;
            entry.set("name", part.name)?;
            match part.file_name {
                Some(file_name) => {
                    entry.set("filename", file_name)?;
                    entry.set("type", part.content_type.unwrap_or_default())?;
                    entry.set("value", ArrayBuffer::new(ctx.clone(), part.data.to_vec())?)?;
                }
                None => entry.set("value", String::from_utf8_lossy(&part.data).into_owned())?,
            }
            Ok(entry)
        })
        .collect()
}
