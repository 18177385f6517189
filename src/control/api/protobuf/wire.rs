//! The protobuf wire format: a message is a run of fields, each a key then a value.
//!
//! The key is a varint `field_number << 3 | wire_type`; the wire type says how long the value
//! is: 0 a varint (7 bits a byte, high bit = more), 1 eight bytes, 5 four bytes, 2 a varint
//! length then that many bytes (strings, bytes, nested messages, packed lists). Nothing says
//! what a field means: that is the schema's job (table.rs).

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl Wire<'_> {
    /// The wire type's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "a varint (wire type 0)",
            Wire::Fixed64(_) => "8 fixed bytes (wire type 1)",
            Wire::Fixed32(_) => "4 fixed bytes (wire type 5)",
            Wire::Bytes(_) => "length-delimited bytes (wire type 2)",
        }
    }
}

/// Reads the fields of one message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// The next field (number, value), None at the end; Err names what is wrong.
    pub fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint().map_err(|e| format!("field key: {e}"))?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("field number {number} is out of range (1 to 536870911)"));
        }
        // `number` fits in 29 bits, checked above.
        let number = number as u32;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint().map_err(|e| format!("field {number}: {e}"))?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take_array(number)?)),
            5 => Wire::Fixed32(u32::from_le_bytes(self.take_array(number)?)),
            2 => {
                let len = self.varint().map_err(|e| format!("field {number}: length: {e}"))?;
                let left = self.buf.len() - self.pos;
                if len > left as u64 {
                    return Err(format!("field {number}: length {len} but only {left} bytes are left (truncated?)"));
                }
                let start = self.pos;
                // `len` <= `left`, a usize.
                self.pos += len as usize;
                Wire::Bytes(&self.buf[start..self.pos])
            }
            3 | 4 => return Err(format!("field {number}: groups (wire types 3 and 4) are not used by Kubernetes")),
            t => return Err(format!("field {number}: unknown wire type {t}")),
        };
        Ok(Some((number, wire)))
    }

    fn take_array<const N: usize>(&mut self, number: u32) -> Result<[u8; N], String> {
        let left = self.buf.len() - self.pos;
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| format!("field {number}: {N} fixed bytes but only {left} are left (truncated?)"))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A varint: at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("the varint is cut short (truncated?)".to_string());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("the varint is longer than 64 bits".to_string());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("the varint is longer than 10 bytes".to_string())
    }

    /// One raw byte (of a packed run of fixed-size numbers).
    pub fn byte(&mut self) -> Option<u8> {
        let b = self.buf.get(self.pos).copied()?;
        self.pos += 1;
        Some(b)
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        // field 1 varint 150, field 2 "hi", field 3 fixed32, field 4 fixed64
        let buf = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0, 0];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field(), Ok(Some((1, Wire::Varint(150)))));
        assert_eq!(r.next_field(), Ok(Some((2, Wire::Bytes(b"hi")))));
        assert_eq!(r.next_field(), Ok(Some((3, Wire::Fixed32(1)))));
        assert_eq!(r.next_field(), Ok(Some((4, Wire::Fixed64(2)))));
        assert_eq!(r.next_field(), Ok(None));
        // -1 as a 10-byte varint
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.varint(), Ok(u64::MAX));
        assert!(r.at_end());
    }

    #[test]
    fn bad_input_is_an_error() {
        for (buf, want) in [
            (&[0x08][..], "cut short"),
            (&[0x12, 0x05, b'a'][..], "only 1 bytes are left"),
            (&[0x0b][..], "groups"),
            (&[0x0e][..], "unknown wire type 6"),
            (&[0x00][..], "field number 0"),
            (&[0x1d, 1][..], "4 fixed bytes"),
            (&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..], "longer than 64 bits"),
        ] {
            let err = Reader::new(buf).next_field().expect_err(want);
            assert!(err.contains(want), "{err} (wanted {want})");
        }
    }
}
