//! Finding the line of a key in a TOML configuration text, so that errors
//! in `apply` and `--config` files name the line they are about.

/// Where in a config text an error lies: the `bridge`-th `[[bridge]]`
/// table, optionally its `n`-th `[[bridge.port]]` or `[[bridge.flow]]`
/// table, optionally a key in that table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spot<'k> {
    /// Index of the `[[bridge]]` table.
    pub(super) bridge: usize,
    /// A sub-table (`"port"` or `"flow"`) and its index, if any.
    pub(super) sub: Option<(&'static str, usize)>,
    /// The key, if any (else the table header's line).
    pub(super) key: Option<&'k str>,
}

/// Line (1-based) of `spot` in `text`, written in the usual layout (one
/// `[[bridge]]` / `[[bridge.port]]` / `[[bridge.flow]]` header per table,
/// one `key = value` per line, as `export` writes it). Falls back to the
/// table's header line when the key is not on a line of its own, and to
/// `None` when the tables are not found (e.g. inline tables).
pub(super) fn line_of(text: &str, spot: Spot<'_>) -> Option<usize> {
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        let inner = l.strip_prefix("[[")?.split("]]").next()?;
        Some(inner.trim().to_string())
    };
    let mut bridge = None::<usize>;
    // Tables of each kind seen so far in the current bridge.
    let (mut n_port, mut n_flow) = (0usize, 0usize);
    let mut cur_sub: Option<&str>;
    let mut table_line = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(h) = header(l) {
            if table_line.is_some() {
                // Left the table we were in without finding the key.
                break;
            }
            match h.as_str() {
                "bridge" => {
                    bridge = Some(bridge.map_or(0, |b| b + 1));
                    (n_port, n_flow) = (0, 0);
                    cur_sub = None;
                }
                "bridge.port" => {
                    cur_sub = Some("port");
                    n_port += 1;
                }
                "bridge.flow" => {
                    cur_sub = Some("flow");
                    n_flow += 1;
                }
                _ => cur_sub = Some("other"),
            }
            let sub_n = if cur_sub == Some("port") {
                n_port
            } else {
                n_flow
            };
            let here = bridge == Some(spot.bridge)
                && match spot.sub {
                    None => cur_sub.is_none(),
                    Some((kind, n)) => cur_sub == Some(kind) && sub_n == n + 1,
                };
            if here {
                table_line = Some(i + 1);
                if spot.key.is_none() {
                    return table_line;
                }
            }
            continue;
        }
        if let (Some(_), Some(key)) = (table_line, spot.key) {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    table_line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[[bridge]]
name = \"a\"
[[bridge.port]]
name = \"p1\"
[[bridge.flow]]
flow = \"actions=drop\"
[[bridge.port]]
name = \"p2\"
tag = 5000

[[bridge]]
name = \"b\"
mac_aging_time = 1
[[bridge.port]]
name = \"p1\"
";

    fn spot(bridge: usize, sub: Option<(&'static str, usize)>, key: &str) -> Option<usize> {
        line_of(
            TEXT,
            Spot {
                bridge,
                sub,
                key: Some(key),
            },
        )
    }

    #[test]
    fn line_of_finds_the_key_in_its_own_table() {
        assert_eq!(spot(0, None, "name"), Some(2));
        assert_eq!(spot(1, None, "name"), Some(12));
        assert_eq!(spot(1, None, "mac_aging_time"), Some(13));
        // Port tables are counted apart from flow tables.
        assert_eq!(spot(0, Some(("port", 1)), "tag"), Some(9));
        assert_eq!(spot(0, Some(("flow", 0)), "flow"), Some(6));
        // The second bridge's p1, not the first's.
        assert_eq!(spot(1, Some(("port", 0)), "name"), Some(15));
        // A key that is absent: the table header.
        assert_eq!(spot(0, Some(("port", 0)), "tag"), Some(3));
        assert_eq!(spot(2, None, "name"), None);
    }
}
