//! Which spreadsheet column holds which customer field: the mapping an import
//! reads its header row with, set in `[import.columns]` or per import.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Spreadsheet header names for the built-in fields; attributes map by their own name
/// unless `attributes` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// Absent: the customer id is derived from the phone number.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "default_phone_column")]
    pub phone: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Attribute name → column header, where they differ.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Default for ColumnMapping {
    fn default() -> Self {
        Self {
            id: None,
            phone: default_phone_column(),
            name: None,
            attributes: BTreeMap::new(),
        }
    }
}

fn default_phone_column() -> String {
    "phone".to_owned()
}
