//! Writes rows of [`COLUMNS`] to a Parquet file with the parquet crate's low-level writer:
//! rows are buffered column by column and flushed as one row group every
//! [`ROWS_PER_GROUP`], so memory stays bounded whatever the facility's size.

use super::columns::{ColumnType, Value, COLUMNS};
use parquet::basic::Compression;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::fs::File;
use std::sync::Arc;

/// Rows per row group: large enough for good compression, small enough to hold in memory
/// (exam rows are a few KiB).
pub(crate) const ROWS_PER_GROUP: usize = 8192;

/// The Parquet schema of [`COLUMNS`], in Parquet's message syntax.
pub(crate) fn schema_text() -> String {
    let mut out = String::from("message exam {\n");
    for c in COLUMNS {
        let rep = if c.nullable { "optional" } else { "required" };
        let ty = match c.ty {
            ColumnType::String => "binary",
            ColumnType::Json => "binary",
            ColumnType::Int32 => "int32",
            ColumnType::Boolean => "boolean",
            ColumnType::TimestampMillisUtc => "int64",
        };
        let logical = match c.ty {
            ColumnType::String => " (STRING)",
            ColumnType::Json => " (JSON)",
            ColumnType::TimestampMillisUtc => " (TIMESTAMP(MILLIS,true))",
            ColumnType::Int32 | ColumnType::Boolean => "",
        };
        out.push_str(&format!("  {rep} {ty} {}{logical};\n", c.name));
    }
    out.push('}');
    out
}

/// A Parquet file being written.
pub(crate) struct ParquetWriter {
    writer: SerializedFileWriter<File>,
    /// Buffered values, one vector per column.
    buffered: Vec<Vec<Value>>,
    rows: u64,
}

impl ParquetWriter {
    pub(crate) fn new(file: File) -> parquet::errors::Result<ParquetWriter> {
        let schema = Arc::new(parse_message_type(&schema_text())?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by(format!("fgw-hub {}", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        Ok(ParquetWriter {
            writer: SerializedFileWriter::new(file, schema, props)?,
            buffered: vec![Vec::new(); COLUMNS.len()],
            rows: 0,
        })
    }

    /// Add one row (values in [`COLUMNS`] order).
    pub(crate) fn push(&mut self, row: Vec<Value>) -> parquet::errors::Result<()> {
        debug_assert_eq!(row.len(), COLUMNS.len());
        if let Some(c) = COLUMNS.iter().zip(&row).find(|(c, v)| !c.nullable && **v == Value::Null) {
            return Err(parquet::errors::ParquetError::General(format!(
                "column {} has no value",
                c.0.name
            )));
        }
        for (col, v) in self.buffered.iter_mut().zip(row) {
            col.push(v);
        }
        self.rows += 1;
        if self.buffered[0].len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> parquet::errors::Result<()> {
        if self.buffered[0].is_empty() {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut col) = group.next_column()? {
            let values = std::mem::take(&mut self.buffered[index]);
            let def: Vec<i16> = values.iter().map(|v| i16::from(*v != Value::Null)).collect();
            let def = COLUMNS[index].nullable.then_some(def.as_slice());
            match COLUMNS[index].ty {
                ColumnType::String | ColumnType::Json => {
                    let data: Vec<ByteArray> = values
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::Str(s) => Some(ByteArray::from(s.into_bytes())),
                            _ => None,
                        })
                        .collect();
                    col.typed::<ByteArrayType>().write_batch(&data, def, None)?;
                }
                ColumnType::Int32 => {
                    let data: Vec<i32> = values
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::I32(n) => Some(n),
                            _ => None,
                        })
                        .collect();
                    col.typed::<Int32Type>().write_batch(&data, def, None)?;
                }
                ColumnType::Boolean => {
                    let data: Vec<bool> = values
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::Bool(b) => Some(b),
                            _ => None,
                        })
                        .collect();
                    col.typed::<BoolType>().write_batch(&data, def, None)?;
                }
                ColumnType::TimestampMillisUtc => {
                    let data: Vec<i64> = values
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::TsMillis(n) => Some(n),
                            _ => None,
                        })
                        .collect();
                    col.typed::<Int64Type>().write_batch(&data, def, None)?;
                }
            }
            col.close()?;
            index += 1;
        }
        group.close()?;
        Ok(())
    }

    /// Flush the last row group, write the footer and make the file durable; the rows
    /// written.
    pub(crate) fn finish(mut self) -> parquet::errors::Result<u64> {
        self.flush()?;
        let file = self.writer.into_inner()?;
        file.sync_all()?;
        Ok(self.rows)
    }
}
