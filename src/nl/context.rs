//! The schema a question is drafted against: the tables, columns, descriptions, sample values and
//! foreign keys the caller may read (policies are applied upstream; nothing denied ever gets here).

use datafusion::arrow::datatypes::DataType;

/// Everything the drafter may use about the caller's schema.
#[derive(Debug, Clone, Default)]
pub struct SchemaContext {
    pub tables: Vec<TableInfo>,
    /// Declared foreign keys; the drafter infers more from column names when these are missing.
    pub foreign_keys: Vec<ForeignKey>,
}

/// One readable table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    pub description: Option<String>,
    pub columns: Vec<ColumnInfo>,
}

/// One readable column.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: DataType,
    pub description: Option<String>,
    /// Distinct values of low-cardinality text columns, as text.
    pub samples: Vec<String>,
    /// Classified as personal data (`[governance] pii`): its samples stay out of model prompts
    /// unless `[planner] prompt_samples = "all"`.
    pub pii: bool,
}

/// A join path between two tables; table names are `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub from_table: String,
    pub from_columns: Vec<String>,
    pub to_table: String,
    pub to_columns: Vec<String>,
}

impl TableInfo {
    /// `schema.table`, the name the drafter writes into SQL and uses in foreign keys.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The column called `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

impl ColumnInfo {
    /// A column with no description and no samples.
    pub fn new(name: impl Into<String>, data_type: DataType) -> ColumnInfo {
        ColumnInfo { name: name.into(), data_type, description: None, samples: vec![], pii: false }
    }

    /// Integer, decimal or floating point.
    pub fn is_numeric(&self) -> bool {
        self.data_type.is_numeric()
    }

    /// Text of any width.
    pub fn is_text(&self) -> bool {
        matches!(self.data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
    }

    /// A calendar date or a timestamp.
    pub fn is_temporal(&self) -> bool {
        matches!(self.data_type, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _))
    }

    /// True or false.
    pub fn is_boolean(&self) -> bool {
        matches!(self.data_type, DataType::Boolean)
    }
}

impl SchemaContext {
    /// The table whose `schema.table` (or bare name) is `name`, case-insensitive.
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables
            .iter()
            .find(|t| t.qualified().eq_ignore_ascii_case(name))
            .or_else(|| self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name)))
    }
}
