//! Embeddings for retrieval: a local one that needs no model download (feature hashing of words,
//! word pairs and character trigrams into a fixed dimension, L2-normalised), always there; and an
//! OpenAI-compatible embeddings endpoint when `[planner] embeddings_base_url/embeddings_model` are set.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::Client;
use serde_json::{json, Value};

use crate::config::PlannerConfig;
use crate::nl::index::IndexError;

/// Dimension of the local embedding: enough buckets that a schema's vocabulary rarely collides.
pub const LOCAL_DIM: usize = 384;
/// Texts per request to the endpoint.
const BATCH: usize = 64;
/// One request to the endpoint; a question waits at most this long before going local-only.
const TIMEOUT: Duration = Duration::from_secs(20);

/// FNV-1a: stable across builds and platforms, so stored vectors stay valid after an upgrade.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn add(v: &mut [f32], feature: &str, weight: f32) {
    let h = fnv(feature.as_bytes());
    let bucket = (h % LOCAL_DIM as u64) as usize;
    // A sign from another bit keeps colliding features from only ever adding up.
    let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
    v[bucket] += sign * weight;
}

/// The local embedding of `text`: word stems (search.rs's, so "restaurants" meets "restaurant"),
/// adjacent word pairs, and character trigrams of each word (so "mexico" is near "mexican").
pub fn local(text: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; LOCAL_DIM];
    let words = crate::search::terms(text);
    for w in &words {
        add(&mut v, &format!("w:{w}"), 1.0);
        let padded: Vec<char> = format!("#{w}#").chars().collect();
        let grams = padded.len().saturating_sub(2).max(1) as f32;
        for g in padded.windows(3) {
            let g: String = g.iter().collect();
            // Trigrams together weigh about half a word.
            add(&mut v, &format!("c:{g}"), 0.5 / grams.sqrt());
        }
    }
    for pair in words.windows(2) {
        add(&mut v, &format!("p:{} {}", pair[0], pair[1]), 0.5);
    }
    normalize(&mut v);
    v
}

/// Scale to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// An OpenAI-compatible `/embeddings` endpoint.
pub struct Remote {
    client: Client<OpenAIConfig>,
    model: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("model", &self.model).finish_non_exhaustive()
    }
}

impl Remote {
    /// The endpoint of `[planner]`, if both its URL and model are set. The key is the chat
    /// model's (`llm_api_key_env`), read from the environment; local servers need none.
    pub fn from_config(cfg: &PlannerConfig) -> Option<Remote> {
        let base = cfg.embeddings_base_url.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
        let model = cfg.embeddings_model.as_deref().map(str::trim).filter(|m| !m.is_empty())?;
        let key = cfg.llm_api_key_env.as_deref().and_then(|v| std::env::var(v).ok()).unwrap_or_default();
        // reqwest's rustls needs the process-wide provider lalo uses everywhere.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let config = OpenAIConfig::new().with_api_base(base.trim_end_matches('/')).with_api_key(key);
        let client = Client::with_config(config).with_http_service(ReqwestService::default());
        Some(Remote { client, model: model.to_string() })
    }

    /// The model's name (part of the index's identity: another model, other vectors).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Embed `texts`, L2-normalised, in batches; any failure fails the whole call.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, IndexError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            let body = json!({"model": self.model, "input": chunk, "encoding_format": "float"});
            let embeddings = self.client.embeddings();
            let call = embeddings.create_byot::<_, Value>(body);
            let reply = match tokio::time::timeout(TIMEOUT, call).await {
                Err(_) => return Err(IndexError::Embedding("the embeddings endpoint did not answer in time".into())),
                Ok(Err(e)) => return Err(IndexError::Embedding(e.to_string())),
                Ok(Ok(v)) => v,
            };
            out.extend(read_vectors(&reply, chunk.len())?);
        }
        Ok(out)
    }
}

/// `data[i].embedding` in `index` order; every vector of one length.
fn read_vectors(reply: &Value, expected: usize) -> Result<Vec<Vec<f32>>, IndexError> {
    let bad = |why: &str| IndexError::Embedding(format!("unusable embeddings reply: {why}"));
    let data = reply.get("data").and_then(Value::as_array).ok_or_else(|| bad("no data"))?;
    let mut rows: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (i, item) in data.iter().enumerate() {
        let index = item.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
        let values = item.get("embedding").and_then(Value::as_array).ok_or_else(|| bad("no embedding"))?;
        let mut v: Vec<f32> = values.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect();
        normalize(&mut v);
        rows.push((index, v));
    }
    rows.sort_by_key(|(i, _)| *i);
    if rows.len() != expected {
        return Err(bad("wrong number of vectors"));
    }
    let dim = rows.first().map(|(_, v)| v.len()).unwrap_or(0);
    if dim == 0 || rows.iter().any(|(_, v)| v.len() != dim) {
        return Err(bad("vectors of different lengths"));
    }
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

/// Cosine similarity of two unit vectors.
#[cfg(test)]
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_vectors_are_unit_length_and_deterministic() {
        let v = local("Mexican food in San Francisco");
        assert_eq!(v.len(), LOCAL_DIM);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(v, local("Mexican food in San Francisco"));
        assert!(local("the of and").iter().all(|x| *x == 0.0), "stop words alone embed to zero");
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let q = local("restaurants serving mexican food");
        let value = local("mexican: food type of restaurant");
        let other = local("paper citations by year of publication");
        assert!(cosine(&q, &value) > cosine(&q, &other) + 0.2, "{} vs {}", cosine(&q, &value), cosine(&q, &other));
        // Trigrams bring word forms together that stemming does not.
        assert!(cosine(&local("mexico"), &local("mexican")) > cosine(&local("mexico"), &local("french")));
    }

    #[test]
    fn endpoint_replies_are_read_in_index_order() {
        let reply = json!({"data": [
            {"index": 1, "embedding": [0.0, 2.0]},
            {"index": 0, "embedding": [3.0, 0.0]}
        ]});
        let v = read_vectors(&reply, 2).expect("vectors");
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(read_vectors(&reply, 3).is_err());
        assert!(read_vectors(&json!({"error": "x"}), 1).is_err());
    }
}
