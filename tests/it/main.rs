//! lalo's integration tests: real clients against a gateway started in-process.

mod common;
mod protocol;
mod protocol_fuzz;
mod psql;
mod governance;
mod governance_gen;
mod policy;
mod mcp;
mod clients;
mod catalog;
mod deploy;
mod slt;
mod nl_rules;
mod pgcluster;
mod upstream;
mod ask;
mod llm;
mod keys;
mod retrieval;
mod walkaround;
mod disclosure;
mod pipeline;
mod postgres_lane;
mod differential;
mod client_catalogs;
mod audit;
