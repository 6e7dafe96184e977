//! Everyday words a question may use that say nothing about the data (verbs of asking, reporting
//! and relating), so an unlinked one is no sign that the schema lacks something.

pub const COMMON: &[&str] = &[
    "written", "write", "wrote", "publish", "published", "serve", "serving", "served", "offer", "offered", "offering",
    "located", "locate", "taken", "take", "took", "received", "receive", "posted", "post", "made", "make", "provide",
    "provided", "want", "need", "know", "see", "look", "based", "group", "grouped", "appear", "appears", "went", "go", "held",
    "hold", "present", "presented", "operate", "operating", "start", "starting", "end", "ending", "begin", "contain",
    "contains", "containing", "include", "includes", "happen", "happened", "occur", "occurred", "there", "exist",
    "different", "various", "several", "same", "distinct", "single", "multiple", "more", "less", "again", "still", "yet",
    "ever", "never", "always", "often", "sometimes", "just", "very", "too", "here", "now", "today", "ago", "recent",
    "recently", "new", "old", "high", "low", "large", "small", "big", "long", "short", "good", "bad", "full", "empty",
    "thing", "things", "item", "list", "kind", "sort", "way", "give", "show", "tell", "return", "display", "calculate",
    "compute", "determine", "identify", "report", "retrieve", "fetch", "obtain", "get", "got", "use", "used", "using",
    "number", "total", "sum", "whose", "alphabetical", "respectively", "together", "along", "besides", "plus", "minus",
    "ascending", "descending", "letter", "taught", "teach", "teaches", "gotten", "either", "string", "strings", "exactly",
    "match", "matching", "integer", "convert", "converted", "format", "case", "insensitive", "insensitively", "sensitive",
    "without", "terms", "term", "require", "requires", "required", "relevant", "relation", "relative", "rated", "positive",
    "negative", "part", "non", "higher", "lower", "excluding", "exclude", "except", "differ", "difference", "date", "calendar",
    "annual", "annually", "change", "changes", "length", "absolute", "pair", "pairs", "person", "came", "come", "comes",
    "datetime", "respect", "weekend", "weekday", "week", "hour", "minute", "second", "daily", "monthly", "yearly", "regular",
    "unix", "since", "today", "yesterday", "tomorrow", "ago", "pm", "am", "filter", "query", "row", "rows", "column", "columns", "involve", "involved", "participate", "participated", "order", "sorted", "ordered", "decreasing", "increasing", "name", "named", "called", "place", "placed", "places", "placing",
];
