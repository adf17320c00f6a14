//! Reading a row's columns: a value that does not decode is [`StateError::Corrupt`] naming
//! the table, column and rowid (never the value), not a default.

use super::StateError;
use fgw_format::ids::IdError;
use rusqlite::types::FromSql;
use rusqlite::Row;

/// One row of `table`; its query selects the row's `rowid` (or, for an aggregate, one
/// representative rowid) under that name.
pub(super) struct Cells<'a, 'r> {
    row: &'a Row<'r>,
    table: &'static str,
    rowid: i64,
}

impl<'a, 'r> Cells<'a, 'r> {
    pub(super) fn new(row: &'a Row<'r>, table: &'static str) -> Result<Self, StateError> {
        let rowid =
            row.get("rowid").map_err(|source| StateError::Sql { op: "read rowid", source })?;
        Ok(Cells { row, table, rowid })
    }

    /// The column decoded as `T` (for the stored enums: one of their values).
    pub(super) fn get<T: FromSql>(&self, column: &'static str) -> Result<T, StateError> {
        self.row.get(column).map_err(|e| match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => self.corrupt(column),
            source => StateError::Sql { op: "read column", source },
        })
    }

    /// A text column holding a validated id (queue id, package id).
    pub(super) fn id<T>(
        &self,
        column: &'static str,
        new: impl FnOnce(String) -> Result<T, IdError>,
    ) -> Result<T, StateError> {
        new(self.get(column)?).map_err(|_| self.corrupt(column))
    }

    /// A nullable text column holding a validated id.
    pub(super) fn id_opt<T>(
        &self,
        column: &'static str,
        new: impl FnOnce(String) -> Result<T, IdError>,
    ) -> Result<Option<T>, StateError> {
        self.get::<Option<String>>(column)?.map(new).transpose().map_err(|_| self.corrupt(column))
    }

    /// A `YYYY-MM-DD` date column.
    pub(super) fn date(
        &self,
        column: &'static str,
    ) -> Result<Option<chrono::NaiveDate>, StateError> {
        self.get::<Option<String>>(column)?
            .map(|s| chrono::NaiveDate::parse_from_str(&s, DATE))
            .transpose()
            .map_err(|_| self.corrupt(column))
    }

    pub(super) fn corrupt(&self, column: &'static str) -> StateError {
        StateError::Corrupt { table: self.table, column, rowid: self.rowid }
    }
}

/// How dates are stored.
pub(super) const DATE: &str = "%Y-%m-%d";
