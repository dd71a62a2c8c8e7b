//! Cursor pagination for every list: `?limit=&cursor=`; responses carry `next_cursor`.
//! The cursor is opaque to clients (base64url of the last item's sort key); a cursor
//! cannot widen access, since every query applies its own authorization filter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A page size, 1 to [`MAX_LIMIT`]: anything else is refused when the query is parsed
/// (400), never silently clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(u32);

impl TryFrom<u32> for Limit {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Limit(n))
        } else {
            Err(format!("limit must be 1 to {MAX_LIMIT}, not {n}"))
        }
    }
}

impl Limit {
    pub fn get(self) -> u32 {
        self.0
    }

    /// `limit`, or [`DEFAULT_LIMIT`] when absent.
    pub fn or_default(limit: Option<Limit>) -> u32 {
        limit.map_or(DEFAULT_LIMIT, Limit::get)
    }
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<Limit>,
    /// `next_cursor` of the previous page; absent or empty: the first page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> u32 {
        Limit::or_default(self.limit)
    }

    /// The decoded position after which this page starts, if any.
    pub fn after<K: DeserializeOwned>(&self) -> Result<Option<K>, Problem> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(decode)
            .transpose()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row only
    /// says that another page exists.
    pub fn from_rows<K: Serialize>(
        mut rows: Vec<T>,
        limit: u32,
        key_of: impl Fn(&T) -> K,
    ) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|last| encode(&key_of(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

pub fn encode<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

pub fn decode<K: DeserializeOwned>(cursor: &str) -> Result<K, Problem> {
    let invalid = Problem::invalid_cursor;
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_cursors_round_trip() {
        let rows: Vec<(i64, &str)> = (1..=5).map(|i| (i, "x")).collect();
        let page = Page::from_rows(rows.clone(), 2, |r| r.0);
        assert_eq!(page.items.len(), 2);
        let cursor = page.next_cursor.unwrap();
        let params = PageParams {
            limit: Some(Limit(2)),
            cursor: Some(cursor),
        };
        assert_eq!(params.after::<i64>().unwrap(), Some(2));
        let last = Page::from_rows(rows[..2].to_vec(), 2, |r| r.0);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_out_of_range_are_refused_and_bad_cursors_rejected() {
        assert_eq!(PageParams::default().limit(), 50);
        assert_eq!(Limit::try_from(1).unwrap().get(), 1);
        assert_eq!(Limit::try_from(200).unwrap().get(), 200);
        assert!(Limit::try_from(0).is_err());
        assert!(Limit::try_from(201).is_err());
        assert!(serde_json::from_str::<Limit>("5000").is_err());
        let bad = PageParams {
            limit: None,
            cursor: Some("%%%".into()),
        };
        let err = bad.after::<i64>().unwrap_err();
        assert_eq!(err.status, 422);
        let empty = PageParams {
            limit: None,
            cursor: Some(String::new()),
        };
        assert_eq!(empty.after::<i64>().unwrap(), None);
        assert!(err.type_uri.ends_with("invalid-cursor"));
    }
}
