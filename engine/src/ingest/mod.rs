//! Ingest: customers coming in. Phone numbers parsed into E.164, spreadsheet
//! columns mapped to fields, rows checked and typed against the schema, the
//! DNC list applied, personal data sealed, and the result written to the
//! store; the [`Directory`] is what the rest of the daemon asks about
//! customers and the DNC list, with personal data unsealed only on the way
//! out.
//!
//! Owns: [`phone`] (E.164 and regions), [`columns`] (the column mapping),
//! [`import`] (spreadsheet import), [`directory`].
//!
//! Imports only `store`. It must not know campaigns, calls, the control
//! socket or the configuration file: what an import needs is handed to it as
//! [`ImportSettings`](import::ImportSettings).

pub mod columns;
pub mod directory;
pub mod import;
pub mod phone;

pub use columns::ColumnMapping;
pub use directory::Directory;
pub use import::ImportJob;
