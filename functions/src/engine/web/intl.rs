//! The Rust half of `Intl`: time zone offsets from the IANA database (`chrono-tz`). All the
//! formatting is en-US patterns in `intl.js`; this only says, for an instant and a zone, how far
//! the zone's wall clock is from UTC and what the zone calls that offset.

use chrono::{Offset, TimeZone};
use chrono_tz::OffsetName;
use rquickjs::{Ctx, Function, Object, Value};

pub fn install<'js>(ctx: &Ctx<'js>, natives: &Object<'js>) -> rquickjs::Result<()> {
    natives.set("zoneOffset", Function::new(ctx.clone(), zone_offset)?)?;
    Ok(())
}

/// `[offset seconds east of UTC, abbreviation ("" when the database has none), canonical
/// zone name]` for `zone` at `millis` since the epoch, or `null` when `zone` is not an IANA
/// zone (or the instant is outside what chrono represents).
fn zone_offset<'js>(ctx: Ctx<'js>, millis: f64, zone: String) -> rquickjs::Result<Value<'js>> {
    let Ok(tz) = zone.parse::<chrono_tz::Tz>() else {
        return Ok(Value::new_null(ctx));
    };
    if !millis.is_finite() {
        return Ok(Value::new_null(ctx));
    }
    let Some(instant) = tz.timestamp_millis_opt(millis as i64).single() else {
        return Ok(Value::new_null(ctx));
    };
    let offset = instant.offset();
    let seconds = offset.fix().local_minus_utc();
    let abbreviation = offset.abbreviation().unwrap_or_default().to_owned();
    let answer = rquickjs::Array::new(ctx.clone())?;
    answer.set(0, seconds)?;
    answer.set(1, abbreviation)?;
    answer.set(2, tz.name())?;
    Ok(answer.into_value())
}
