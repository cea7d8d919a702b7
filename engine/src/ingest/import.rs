//! Import of customer spreadsheets (CSV, XLSX, XLS, ODS).
//!
//! Every row either lands or goes to a rejects file with its row number, column and
//! reason; a bad row never stops the import. Rows are read in chunks, checked on all
//! cores, resolved against the file so far and the store, written, and flushed once
//! before the summary is returned.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ingest::columns::ColumnMapping;
use crate::ingest::phone::{E164, PhoneError, Region};
use crate::store::customer::{AttributeSchema, CustomerId};
use crate::store::vault::{PhoneKey, Vault};
use crate::store::{CustomerWrite, SealedCustomer, Store, StoreError};

const CHUNK_ROWS: usize = 16_384;
const MAX_NAME_CHARS: usize = 200;

/// How cells become customers; fixed for the daemon's lifetime.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub schema: AttributeSchema,
    pub region: Region,
    /// The zone for civil times written without an offset.
    pub civil_zone: jiff::tz::TimeZone,
}

/// One import: which file, how its columns map, and where rejected rows go.
#[derive(Debug, Clone)]
pub struct ImportJob {
    pub path: PathBuf,
    pub mapping: ColumnMapping,
    /// Defaults to `NAME.rejects.csv` beside the input.
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    /// Data rows read (the header is not counted).
    pub rows: u64,
    /// New customers.
    pub imported: u64,
    /// Known customers whose record changed.
    pub updated: u64,
    /// Known customers whose record was already the same.
    pub unchanged: u64,
    /// Rejected rows by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Share of rows that were valid, from 0 to 1.
    pub valid_ratio: f64,
    pub rejects_file: Option<PathBuf>,
}

impl ImportSummary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// How far an import has got, for progress bars.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ImportProgress {
    pub rows: u64,
    /// Fraction of the input consumed, from 0 to 1.
    pub fraction: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot open `{path}`: {message}")]
    Open { path: PathBuf, message: String },
    #[error("`{path}` is not a spreadsheet dialhound reads; use .csv, .xlsx, .xls or .ods")]
    UnknownFormat { path: PathBuf },
    #[error("`{path}` has no header row")]
    NoHeader { path: PathBuf },
    #[error("`{path}` has no column `{column}` for the customer's {field}; columns are: {found}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        field: String,
        found: String,
    },
    #[error("reading `{path}` failed after {rows} rows: {message}")]
    Read {
        path: PathBuf,
        rows: u64,
        message: String,
    },
    #[error("cannot write rejects file `{path}`: {message}")]
    Rejects { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Stable code for the socket protocol.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Open { .. } => "import_open",
            ImportError::UnknownFormat { .. } => "import_format",
            ImportError::NoHeader { .. } | ImportError::MissingColumn { .. } => "import_columns",
            ImportError::Read { .. } => "import_read",
            ImportError::Rejects { .. } => "import_rejects",
            ImportError::Store(_) => "store",
        }
    }
}

/// Runs one import against the store. Blocking: call it off the async reactor.
pub fn run(
    job: &ImportJob,
    settings: &ImportSettings,
    vault: &Vault,
    store: &dyn Store,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportSummary, ImportError> {
    let mut source = RowSource::open(&job.path)?;
    let header = source.header()?;
    let columns = Columns::resolve(&header, &job.mapping, settings, &job.path)?;
    let mut resolver = Resolver::new(&columns);
    let mut rejects: Vec<Reject> = Vec::new();
    let mut summary = ImportSummary::default();

    // Chunk N is written while chunk N+1 is read and checked. The checks look at the
    // store as it was before the chunks still in flight; rows those chunks touch are
    // caught as duplicates within the file, so the only effect is that a number a
    // customer gave up in the previous chunk is still seen as taken.
    let view = StoreView {
        store,
        had_customers: store.customer_count() > 0,
    };
    let (to_writer, from_reader) = std::sync::mpsc::sync_channel::<Vec<CustomerWrite>>(1);
    let written = std::thread::scope(|scope| -> Result<(), ImportError> {
        let writer = scope.spawn(move || -> Result<(), StoreError> {
            for writes in from_reader {
                store.write_customers(&writes)?;
            }
            Ok(())
        });
        let read = (|| -> Result<(), ImportError> {
            loop {
                let chunk = source.next_chunk(CHUNK_ROWS, summary.rows)?;
                if chunk.is_empty() {
                    return Ok(());
                }
                summary.rows += chunk.len() as u64;
                let checked = check_rows(&chunk, &columns, settings, vault, view);
                let mut writes = Vec::with_capacity(checked.len());
                for row in checked {
                    match row.and_then(|valid| resolver.resolve(valid)) {
                        Ok(Resolved::Write(write)) => {
                            if write.previous_phone.is_some() {
                                summary.updated += 1;
                            } else {
                                summary.imported += 1;
                            }
                            writes.push(write);
                        }
                        Ok(Resolved::Unchanged) => summary.unchanged += 1,
                        Err(reject) => {
                            *summary
                                .rejected
                                .entry(reject.reason.to_owned())
                                .or_default() += 1;
                            rejects.push(reject);
                        }
                    }
                }
                if to_writer.send(writes).is_err() {
                    // The writer stopped on an error; joining it below reports it.
                    return Ok(());
                }
                progress(ImportProgress {
                    rows: summary.rows,
                    fraction: source.fraction(),
                });
            }
        })();
        drop(to_writer);
        let wrote = writer.join().map_err(|_| StoreError::Panicked)?;
        wrote?;
        read
    });
    written?;
    store.flush()?;

    if !rejects.is_empty() {
        let path = job
            .rejects
            .clone()
            .unwrap_or_else(|| default_rejects_path(&job.path));
        write_rejects(&path, &rejects).map_err(|message| ImportError::Rejects {
            path: path.clone(),
            message,
        })?;
        summary.rejects_file = Some(path);
    }
    let valid = summary.rows - summary.rejected_total();
    summary.valid_ratio = if summary.rows == 0 {
        1.0
    } else {
        valid as f64 / summary.rows as f64
    };
    Ok(summary)
}

/// `customers.csv` → `customers.rejects.csv`.
pub fn default_rejects_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned());
    input.with_file_name(format!("{stem}.rejects.csv"))
}

/// A data row: its number as a spreadsheet shows it (the header is row 1) and cells.
struct Row {
    number: u64,
    cells: Result<Cells, String>,
}

/// A row's cells: a CSV record keeps all its cells in one buffer.
enum Cells {
    Csv(csv::StringRecord),
    Sheet(Vec<String>),
}

impl Cells {
    /// The cell at `at`, empty past the row's end.
    fn get(&self, at: usize) -> &str {
        match self {
            Cells::Csv(record) => record.get(at).unwrap_or(""),
            Cells::Sheet(cells) => cells.get(at).map_or("", String::as_str),
        }
    }
}

/// A rejected row.
#[derive(Debug, Clone)]
struct Reject {
    row: u64,
    column: String,
    reason: &'static str,
    message: String,
}

/// A row that passed the checks that need only the row itself, with what the store
/// already holds for its number and id (looked up in parallel, before any write of
/// this chunk).
struct ValidRow {
    row: u64,
    customer: SealedCustomer,
    explicit_id: bool,
    on_dnc: bool,
    phone_owner: Option<CustomerId>,
    stored: Option<SealedCustomer>,
}

enum Resolved {
    Write(CustomerWrite),
    Unchanged,
}

/// Column positions, resolved once from the header.
struct Columns {
    phone: (usize, String),
    id: Option<(usize, String)>,
    name: Option<(usize, String)>,
    attributes: Vec<(String, Option<(usize, String)>)>,
}

impl Columns {
    fn resolve(
        header: &[String],
        mapping: &ColumnMapping,
        settings: &ImportSettings,
        path: &Path,
    ) -> Result<Columns, ImportError> {
        let find = |column: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(column))
        };
        let missing = |column: &str, field: &str| ImportError::MissingColumn {
            path: path.to_owned(),
            column: column.to_owned(),
            field: field.to_owned(),
            found: header
                .iter()
                .map(|h| format!("`{h}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let required = |column: &str, field: &str| {
            find(column)
                .map(|at| (at, header[at].clone()))
                .ok_or_else(|| missing(column, field))
        };
        let phone = required(&mapping.phone, "phone number")?;
        let id = mapping
            .id
            .as_deref()
            .map(|c| required(c, "id"))
            .transpose()?;
        let name = match mapping.name.as_deref() {
            Some(column) => Some(required(column, "name")?),
            None => find("name").map(|at| (at, header[at].clone())),
        };
        let mut attributes = Vec::new();
        for (attribute, kind) in &settings.schema.attributes {
            let column = mapping.attributes.get(attribute).unwrap_or(attribute);
            let position = find(column).map(|at| (at, header[at].clone()));
            if position.is_none() && !kind.optional {
                return Err(missing(column, &format!("attribute `{attribute}`")));
            }
            attributes.push((attribute.clone(), position));
        }
        Ok(Columns {
            phone,
            id,
            name,
            attributes,
        })
    }
}

/// The checks that need only the row and the store as it was before this chunk,
/// spread over the machine's cores.
fn check_rows(
    rows: &[Row],
    columns: &Columns,
    settings: &ImportSettings,
    vault: &Vault,
    store: StoreView<'_>,
) -> Vec<Result<ValidRow, Reject>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if workers == 1 || rows.len() < 1024 {
        return rows
            .iter()
            .map(|row| check_row(row, columns, settings, vault, store))
            .collect();
    }
    let per_worker = rows.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per_worker)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|row| check_row(row, columns, settings, vault, store))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("row checks do not panic on any input"))
            .collect()
    })
}

fn check_row(
    row: &Row,
    columns: &Columns,
    settings: &ImportSettings,
    vault: &Vault,
    view: StoreView<'_>,
) -> Result<ValidRow, Reject> {
    let reject = |column: &str, reason: &'static str, message: String| Reject {
        row: row.number,
        column: column.to_owned(),
        reason,
        message,
    };
    let cells = row
        .cells
        .as_ref()
        .map_err(|message| reject("", "unreadable_row", message.clone()))?;
    let cell = |at: usize| cells.get(at);

    let (phone_at, phone_column) = &columns.phone;
    let phone = E164::parse(cell(*phone_at), settings.region).map_err(|error: PhoneError| {
        reject(phone_column, error.code(), error.describe().to_owned())
    })?;
    let phone_key = vault.phone_key(phone.as_str());

    let (id, explicit_id) = match &columns.id {
        Some((at, column)) => {
            let id = CustomerId::parse(cell(*at)).ok_or_else(|| {
                reject(
                    column,
                    "invalid_id",
                    "the id must be 1 to 64 characters without spaces".into(),
                )
            })?;
            (id, true)
        }
        None => (derived_id(&phone_key), false),
    };

    let name = match &columns.name {
        Some((at, column)) => {
            let name = cell(*at).trim();
            if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(reject(
                    column,
                    "invalid_name",
                    format!(
                        "a name is at most {MAX_NAME_CHARS} characters without control characters"
                    ),
                ));
            }
            (!name.is_empty()).then(|| name.to_owned())
        }
        None => None,
    };

    let mut attributes = BTreeMap::new();
    for (attribute, position) in &columns.attributes {
        let Some(kind) = settings.schema.attributes.get(attribute) else {
            continue;
        };
        let (text, column) = match position {
            Some((at, column)) => (cell(*at), column.as_str()),
            None => ("", attribute.as_str()),
        };
        match kind.read_cell(text, &settings.civil_zone) {
            Ok(Some(value)) => {
                attributes.insert(attribute.clone(), value);
            }
            Ok(None) => {}
            Err(error) => return Err(reject(column, "invalid_attribute", error.0)),
        }
    }

    let personal = crate::store::encode_personal(phone.as_str(), name.as_deref());
    let fingerprint = vault.fingerprint([
        id.as_str().as_bytes(),
        personal.as_slice(),
        crate::store::encode_attributes(&attributes).as_slice(),
    ]);
    let sealed_personal = vault.seal(&personal, id.as_str().as_bytes());
    let store_failed = |error: StoreError| reject("", "store_error", error.to_string());
    let on_dnc = view.store.dnc_contains(&phone_key).map_err(store_failed)?;
    let (phone_owner, stored) = if view.had_customers {
        (
            view.store
                .customer_by_phone(&phone_key)
                .map_err(store_failed)?,
            view.store.customer(&id).map_err(store_failed)?,
        )
    } else {
        (None, None)
    };
    Ok(ValidRow {
        row: row.number,
        customer: SealedCustomer {
            id,
            phone_key,
            fingerprint,
            sealed_personal,
            attributes,
        },
        explicit_id,
        on_dnc,
        phone_owner,
        stored,
    })
}

/// The store as the row checks see it.
#[derive(Clone, Copy)]
struct StoreView<'a> {
    store: &'a dyn Store,
    /// Whether the store held any customer when the import began. When it held
    /// none, every customer or phone index entry it could show was written by an
    /// earlier chunk of this file, and the resolver rejects such a row as a
    /// duplicate within the file before it looks at the store's answer; so a
    /// first import skips those two lookups per row. The do-not-call list is
    /// always looked up.
    had_customers: bool,
}

/// Without an id column, a customer is known by a keyed hash of the number.
fn derived_id(phone: &PhoneKey) -> CustomerId {
    let hex: String = phone.0[..8].iter().map(|b| format!("{b:02x}")).collect();
    CustomerId::parse(&format!("p{hex}")).expect("a 17-character hex id is a valid customer id")
}

/// Decisions that need the rest of the file and the store, taken in row order.
struct Resolver {
    phone_column: String,
    id_column: String,
    phones: HashMap<PhoneKey, u64>,
    ids: HashMap<CustomerId, u64>,
}

impl Resolver {
    fn new(columns: &Columns) -> Resolver {
        Resolver {
            phone_column: columns.phone.1.clone(),
            id_column: columns
                .id
                .as_ref()
                .map_or_else(String::new, |(_, c)| c.clone()),
            phones: HashMap::new(),
            ids: HashMap::new(),
        }
    }

    fn resolve(&mut self, valid: ValidRow) -> Result<Resolved, Reject> {
        let customer = valid.customer;
        let reject = |column: &str, reason: &'static str, message: String| Reject {
            row: valid.row,
            column: column.to_owned(),
            reason,
            message,
        };
        if let Some(first) = self.phones.get(&customer.phone_key) {
            return Err(reject(
                &self.phone_column,
                "duplicate",
                format!("same number as row {first}"),
            ));
        }
        if let Some(first) = self.ids.get(&customer.id).filter(|_| valid.explicit_id) {
            return Err(reject(
                &self.id_column,
                "duplicate",
                format!("same id as row {first}"),
            ));
        }
        if valid.on_dnc {
            return Err(reject(
                &self.phone_column,
                "do_not_call",
                "the number is on the do-not-call list".into(),
            ));
        }
        if let Some(owner) = valid.phone_owner.filter(|owner| *owner != customer.id) {
            return Err(reject(
                &self.phone_column,
                "duplicate",
                format!("the number already belongs to customer `{owner}`"),
            ));
        }
        self.phones.insert(customer.phone_key, valid.row);
        self.ids.insert(customer.id.clone(), valid.row);
        match valid.stored {
            Some(stored) if stored.fingerprint == customer.fingerprint => Ok(Resolved::Unchanged),
            Some(stored) => Ok(Resolved::Write(CustomerWrite {
                previous_phone: Some(stored.phone_key),
                customer,
            })),
            None => Ok(Resolved::Write(CustomerWrite {
                customer,
                previous_phone: None,
            })),
        }
    }
}

/// Reads rows from a CSV stream or a workbook's first sheet.
struct RowSource {
    path: PathBuf,
    rows: Rows,
}

enum Rows {
    Csv {
        reader: csv::Reader<File>,
        size: u64,
    },
    Sheet {
        rows: std::vec::IntoIter<Vec<String>>,
        total: usize,
        next_number: u64,
    },
}

impl RowSource {
    fn open(path: &Path) -> Result<RowSource, ImportError> {
        Ok(RowSource {
            path: path.to_owned(),
            rows: Rows::open(path)?,
        })
    }

    fn header(&mut self) -> Result<Vec<String>, ImportError> {
        self.rows.header().ok_or_else(|| ImportError::NoHeader {
            path: self.path.clone(),
        })
    }

    fn next_chunk(&mut self, limit: usize, rows_so_far: u64) -> Result<Vec<Row>, ImportError> {
        self.rows
            .next_chunk(limit)
            .map_err(|(read, message)| ImportError::Read {
                path: self.path.clone(),
                rows: rows_so_far + read,
                message,
            })
    }

    fn fraction(&self) -> f64 {
        self.rows.fraction()
    }
}

impl Rows {
    fn open(path: &Path) -> Result<Rows, ImportError> {
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let open_failed = |message: String| ImportError::Open {
            path: path.to_owned(),
            message,
        };
        match extension.as_str() {
            "csv" | "txt" => {
                let file = File::open(path).map_err(|e| open_failed(e.to_string()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .has_headers(false)
                    .from_reader(file);
                Ok(Rows::Csv { reader, size })
            }
            "xlsx" | "xlsm" | "xls" | "xlsb" | "ods" => {
                use calamine::Reader;
                let mut workbook =
                    calamine::open_workbook_auto(path).map_err(|e| open_failed(e.to_string()))?;
                let range = workbook
                    .worksheet_range_at(0)
                    .ok_or_else(|| open_failed("the workbook has no sheets".into()))?
                    .map_err(|e| open_failed(e.to_string()))?;
                let rows: Vec<Vec<String>> = range
                    .rows()
                    .map(|row| row.iter().map(cell_text).collect())
                    .collect();
                Ok(Rows::Sheet {
                    total: rows.len(),
                    rows: rows.into_iter(),
                    next_number: 1,
                })
            }
            _ => Err(ImportError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }

    fn header(&mut self) -> Option<Vec<String>> {
        match self {
            Rows::Csv { reader, .. } => {
                let mut record = csv::ByteRecord::new();
                if !reader.read_byte_record(&mut record).ok()? {
                    return None;
                }
                Some(
                    record
                        .iter()
                        .map(|field| {
                            String::from_utf8_lossy(field)
                                .trim_start_matches('\u{feff}')
                                .trim()
                                .to_owned()
                        })
                        .collect(),
                )
            }
            Rows::Sheet {
                rows, next_number, ..
            } => {
                *next_number += 1;
                rows.next()
            }
        }
    }

    /// The next rows; on a read error, how many rows of this chunk were read and why.
    fn next_chunk(&mut self, limit: usize) -> Result<Vec<Row>, (u64, String)> {
        let mut chunk = Vec::with_capacity(limit.min(4096));
        match self {
            Rows::Csv { reader, .. } => {
                let mut record = csv::ByteRecord::new();
                while chunk.len() < limit {
                    match reader.read_byte_record(&mut record) {
                        Ok(false) => break,
                        Ok(true) => {
                            let number = record.position().map_or(0, |p| p.line());
                            if record
                                .iter()
                                .all(|field| field.iter().all(u8::is_ascii_whitespace))
                            {
                                continue;
                            }
                            // One copy of the record (two allocations), not a String
                            // per cell.
                            let cells = csv::StringRecord::from_byte_record(record.clone())
                                .map(Cells::Csv)
                                .map_err(|_| {
                                    "the row is not UTF-8 text; save the file as UTF-8".to_owned()
                                });
                            chunk.push(Row { number, cells });
                        }
                        Err(error) => return Err((chunk.len() as u64, error.to_string())),
                    }
                }
            }
            Rows::Sheet {
                rows, next_number, ..
            } => {
                for cells in rows.by_ref() {
                    let number = *next_number;
                    *next_number += 1;
                    if cells.iter().all(|c| c.trim().is_empty()) {
                        continue;
                    }
                    chunk.push(Row {
                        number,
                        cells: Ok(Cells::Sheet(cells)),
                    });
                    if chunk.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(chunk)
    }

    fn fraction(&self) -> f64 {
        match self {
            Rows::Csv { reader, size } => {
                if *size == 0 {
                    1.0
                } else {
                    (reader.position().byte() as f64 / *size as f64).min(1.0)
                }
            }
            Rows::Sheet { rows, total, .. } => {
                if *total == 0 {
                    1.0
                } else {
                    1.0 - rows.len() as f64 / *total as f64
                }
            }
        }
    }
}

/// A workbook cell as text. Numbers that are whole print without a fraction, so a
/// phone number typed into a numeric cell reads as the digits the user sees.
fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(int) => int.to_string(),
        Data::Float(float) if float.fract() == 0.0 && float.abs() < 1e15 => {
            format!("{}", *float as i64)
        }
        Data::Float(float) => float.to_string(),
        Data::Bool(flag) => flag.to_string(),
        Data::DateTime(serial) => excel_serial_to_civil(serial.as_f64()),
        Data::Error(error) => format!("#{error:?}"),
    }
}

/// Excel's day count (days since 1899-12-30, fraction = time of day) as civil text.
fn excel_serial_to_civil(serial: f64) -> String {
    let epoch = jiff::civil::date(1899, 12, 30).at(0, 0, 0, 0);
    let millis = (serial * 86_400_000.0).round() as i64;
    match jiff::SignedDuration::from_millis(millis).try_into() {
        Ok(span) => epoch
            .checked_add::<jiff::Span>(span)
            .map(|dt| dt.to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn write_rejects(path: &Path, rejects: &[Reject]) -> Result<(), String> {
    let mut writer = csv::Writer::from_path(path).map_err(|e| e.to_string())?;
    writer
        .write_record(["row", "column", "reason", "message"])
        .map_err(|e| e.to_string())?;
    for reject in rejects {
        writer
            .write_record([
                reject.row.to_string().as_str(),
                reject.column.as_str(),
                reject.reason,
                reject.message.as_str(),
            ])
            .map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::store::MemoryStore;

    fn settings() -> ImportSettings {
        ImportSettings {
            schema: AttributeSchema::default(),
            region: Region::parse("CN").expect("CN is a region"),
            civil_zone: jiff::tz::TimeZone::UTC,
        }
    }

    fn job(dir: &Path, csv: &str, id: bool) -> ImportJob {
        let path = dir.join("customers.csv");
        std::fs::write(&path, csv).unwrap();
        ImportJob {
            path,
            mapping: ColumnMapping {
                id: id.then(|| "customer_id".to_owned()),
                phone: "phone".into(),
                name: Some("name".into()),
                attributes: Default::default(),
            },
            rejects: Some(dir.join("rejects.csv")),
        }
    }

    fn number(row: usize) -> String {
        format!("138{:08}", row * 7_919 % 100_000_000)
    }

    /// Rows that repeat a number or an id from an earlier chunk are rejected the
    /// same way whether or not the store held customers before, and importing the
    /// file again changes nothing.
    #[test]
    fn duplicates_across_chunks_are_caught_in_an_empty_store_and_a_full_one() {
        let rows = CHUNK_ROWS + 2_000;
        for with_id in [true, false] {
            let mut csv = String::from("customer_id,name,phone\n");
            for row in 0..rows {
                let phone = match row {
                    r if r == CHUNK_ROWS + 10 => number(3),
                    _ => number(row),
                };
                let id = if row == CHUNK_ROWS + 20 { 7 } else { row };
                let _ = writeln!(csv, "C{id},name {row},{phone}");
            }
            let dir = tempfile::tempdir().unwrap();
            let job = job(dir.path(), &csv, with_id);
            let vault = Vault::from_master_key(&[7; 32]);
            let store = MemoryStore::new();
            let first = run(&job, &settings(), &vault, &store, &mut |_| {}).unwrap();
            let expected_rejects = if with_id { 2 } else { 1 };
            assert_eq!(first.rejected.get("duplicate"), Some(&expected_rejects));
            assert_eq!(first.imported, (rows as u64) - expected_rejects);
            let rejects = std::fs::read_to_string(dir.path().join("rejects.csv")).unwrap();
            assert!(rejects.contains("same number as row 5"), "{rejects}");
            if with_id {
                assert!(rejects.contains("same id as row 9"), "{rejects}");
            }
            let again = run(&job, &settings(), &vault, &store, &mut |_| {}).unwrap();
            assert_eq!(again.imported, 0);
            assert_eq!(again.updated, 0);
            assert_eq!(again.unchanged, first.imported);
            assert_eq!(again.rejected, first.rejected);
        }
    }
}
