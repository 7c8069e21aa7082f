//! Pagination, as pure functions over a slice, in the three styles vendors use:
//!
//! | style | vendor | request | response |
//! |---|---|---|---|
//! | [`numbered`] | Rossum (DRF) | `page` (1-based), `page_size` | `total`, `total_pages`, absolute `next`/`previous` links ([`page_link`]) |
//! | [`offset`] | Dataloop | `pageOffset` (0-based), `pageSize` | `totalItemsCount`, `items`, `totalPagesCount`, `hasNextPage` ([`OffsetPage::to_json`]) |
//! | [`cursor`] | Rendered.ai | `cursor` (key of the last item seen, exclusive), `limit` | the items; the client stops on a short page |

use serde::Serialize;
use serde_json::{Value, json};

/// A page request that cannot be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// A page number past the last page (DRF answers `404 {"detail": "Invalid page."}`).
    #[error("Invalid page.")]
    InvalidPage,
}

/// `page` and `page_size` of a numbered-page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NumberedParams {
    /// 1-based page number.
    pub page: usize,
    /// Items per page.
    pub page_size: usize,
}

/// Reads `page` and `page_size` from query pairs: absent or unparsable values take the
/// defaults (page 1, `default_size`); `page_size` is capped at `max_size`, as DRF does.
pub fn numbered_params(
    query: &[(String, String)],
    default_size: usize,
    max_size: usize,
) -> NumberedParams {
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let page_size = param("page_size")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default_size)
        .min(max_size)
        .max(1);
    let page = param("page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    NumberedParams { page, page_size }
}

/// One numbered page.
#[derive(Debug, PartialEq)]
pub struct NumberedPage<'a, T> {
    /// The items on this page.
    pub items: &'a [T],
    /// This page's number (1-based).
    pub page: usize,
    /// Items in all pages.
    pub total: usize,
    /// Pages (at least 1, even when there are no items).
    pub total_pages: usize,
}

impl<T> NumberedPage<'_, T> {
    /// The next page's number, if any.
    pub fn next(&self) -> Option<usize> {
        (self.page < self.total_pages).then_some(self.page + 1)
    }

    /// The previous page's number, if any.
    pub fn previous(&self) -> Option<usize> {
        (self.page > 1).then(|| self.page - 1)
    }
}

/// Page `params.page` of `items`.
pub fn numbered<T>(items: &[T], params: NumberedParams) -> Result<NumberedPage<'_, T>, PageError> {
    let size = params.page_size.max(1);
    let total = items.len();
    let total_pages = total.div_ceil(size).max(1);
    if params.page == 0 || params.page > total_pages {
        return Err(PageError::InvalidPage);
    }
    let start = (params.page - 1) * size;
    let end = (start + size).min(total);
    Ok(NumberedPage {
        items: &items[start..end],
        page: params.page,
        total,
        total_pages,
    })
}

/// The absolute link to page `page` of `<base>/<path>`, keeping the other query parameters
/// (DRF's `next`/`previous`).
pub fn page_link(base: &str, path: &str, query: &[(String, String)], page: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.iter().filter(|(k, _)| k != "page") {
        s.append_pair(k, v);
    }
    s.append_pair("page", &page.to_string());
    format!(
        "{}/{}?{}",
        base.trim_end_matches('/'),
        path.trim_matches('/'),
        s.finish()
    )
}

/// One offset page.
#[derive(Debug, PartialEq)]
pub struct OffsetPage<'a, T> {
    /// The items on this page.
    pub items: &'a [T],
    /// Items in all pages.
    pub total_items_count: usize,
    /// Pages.
    pub total_pages_count: usize,
    /// Whether a page follows this one.
    pub has_next_page: bool,
}

impl<T: Serialize> OffsetPage<'_, T> {
    /// Dataloop's envelope: `{"totalItemsCount", "items", "totalPagesCount", "hasNextPage"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "totalItemsCount": self.total_items_count,
            "items": self.items,
            "totalPagesCount": self.total_pages_count,
            "hasNextPage": self.has_next_page,
        })
    }
}

/// Page `page_offset` (0-based) of `page_size` items; a page past the end is empty and has no
/// next page.
pub fn offset<T>(items: &[T], page_offset: usize, page_size: usize) -> OffsetPage<'_, T> {
    let size = page_size.max(1);
    let total = items.len();
    let start = page_offset.saturating_mul(size).min(total);
    let end = start.saturating_add(size).min(total);
    OffsetPage {
        items: &items[start..end],
        total_items_count: total,
        total_pages_count: total.div_ceil(size),
        has_next_page: end < total,
    }
}

/// Up to `limit` items after the one whose key is `cursor` (exclusive; `None`: from the start).
/// `items` must be sorted by `key`, ascending; a cursor whose item is gone still works, as it
/// does with a database's "greater than" cursor.
pub fn cursor<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> &str,
    cursor: Option<&str>,
    limit: usize,
) -> &'a [T] {
    debug_assert!(
        items.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
        "cursor pagination needs items sorted by key"
    );
    let start = match cursor {
        None => 0,
        Some(c) => items.partition_point(|x| key(x) <= c),
    };
    let end = start.saturating_add(limit).min(items.len());
    &items[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn numbered_pages_walk_every_item_once() {
        let items: Vec<u32> = (1..=45).collect();
        let mut seen = Vec::new();
        let mut page = Some(1);
        while let Some(p) = page {
            let pg = numbered(
                &items,
                NumberedParams {
                    page: p,
                    page_size: 20,
                },
            )
            .unwrap();
            assert_eq!(pg.total, 45);
            assert_eq!(pg.total_pages, 3);
            seen.extend_from_slice(pg.items);
            assert_eq!(pg.previous(), (p > 1).then(|| p - 1));
            page = pg.next();
        }
        assert_eq!(seen, items);
        assert_eq!(
            numbered(
                &items,
                NumberedParams {
                    page: 4,
                    page_size: 20
                }
            ),
            Err(PageError::InvalidPage)
        );
        let empty: [u32; 0] = [];
        let pg = numbered(
            &empty,
            NumberedParams {
                page: 1,
                page_size: 20,
            },
        )
        .unwrap();
        assert_eq!((pg.items.len(), pg.total_pages, pg.next()), (0, 1, None));
    }

    #[test]
    fn numbered_params_defaults_and_caps() {
        assert_eq!(
            numbered_params(&q(&[]), 20, 100),
            NumberedParams {
                page: 1,
                page_size: 20
            }
        );
        assert_eq!(
            numbered_params(&q(&[("page", "3"), ("page_size", "1000")]), 20, 100),
            NumberedParams {
                page: 3,
                page_size: 100
            }
        );
        assert_eq!(
            numbered_params(&q(&[("page", "x"), ("page_size", "0")]), 20, 100),
            NumberedParams {
                page: 1,
                page_size: 20
            }
        );
        assert_eq!(numbered_params(&q(&[("page", "0")]), 20, 100).page, 1);
    }

    #[test]
    fn page_links_are_absolute_and_keep_other_parameters() {
        let link = page_link(
            "http://127.0.0.1:9/api/v1/",
            "/queues",
            &q(&[("page", "1"), ("workspace", "a b"), ("page_size", "5")]),
            2,
        );
        assert_eq!(
            link,
            "http://127.0.0.1:9/api/v1/queues?workspace=a+b&page_size=5&page=2"
        );
    }

    #[test]
    fn offset_pages_report_has_next_and_totals() {
        let items: Vec<u32> = (0..10).collect();
        let p0 = offset(&items, 0, 4);
        assert_eq!((p0.items, p0.has_next_page), (&items[0..4], true));
        assert_eq!((p0.total_items_count, p0.total_pages_count), (10, 3));
        let p2 = offset(&items, 2, 4);
        assert_eq!((p2.items, p2.has_next_page), (&items[8..10], false));
        let past = offset(&items, 9, 4);
        assert!(past.items.is_empty() && !past.has_next_page);
        let huge = offset(&items, usize::MAX, usize::MAX);
        assert!(huge.items.is_empty() && !huge.has_next_page);
        assert_eq!(
            offset(&items, 0, 10).to_json(),
            json!({"totalItemsCount": 10, "items": items, "totalPagesCount": 1, "hasNextPage": false})
        );
        let none: [u32; 0] = [];
        assert_eq!(offset(&none, 0, 1000).total_pages_count, 0);
    }

    #[test]
    fn cursor_pages_are_exclusive_and_survive_a_deleted_cursor() {
        let items = ["a", "b", "c", "d", "e"];
        // A fn item: a closure bound to a variable would not be general over the lifetime.
        fn key<'r>(s: &'r &str) -> &'r str {
            s
        }
        assert_eq!(cursor(&items, key, None, 2), &["a", "b"]);
        assert_eq!(cursor(&items, key, Some("b"), 2), &["c", "d"]);
        assert_eq!(cursor(&items, key, Some("d"), 2), &["e"]);
        assert!(cursor(&items, key, Some("e"), 2).is_empty());
        assert_eq!(
            cursor(&items, key, Some("bb"), 2),
            &["c", "d"],
            "cursor item deleted"
        );
        assert_eq!(cursor(&items, key, None, usize::MAX), &items);
        // Walking with the last key of each page, stopping on a short page, sees each item once.
        let mut seen = Vec::new();
        let mut c: Option<&str> = None;
        loop {
            let page = cursor(&items, key, c, 2);
            seen.extend_from_slice(page);
            if page.len() < 2 {
                break;
            }
            c = page.last().copied();
        }
        assert_eq!(seen, items);
    }
}
