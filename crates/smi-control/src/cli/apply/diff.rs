//! A line diff for `smictl apply --dry-run`: the unified format's hunks (`@@ -a,b +c,d @@`, then
//! ` `, `-` and `+` lines), from a longest common subsequence of the lines.

/// Unchanged lines shown around each change.
const CONTEXT: usize = 3;

/// Past this many cells (old lines × new lines, once the common start and end are cut) the
/// diff is every old line removed and every new one added, rather than a large table.
const MAX_CELLS: usize = 4_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same,
    Removed,
    Added,
}

/// The hunks turning `old` into `new`; nothing when they are equal.
pub fn unified(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let ops = ops(&a, &b);
    // Each op with the old and new line it stands at.
    let mut at = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0, 0);
    for op in &ops {
        at.push((i, j));
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Removed => i += 1,
            Op::Added => j += 1,
        }
    }
    let mut out = Vec::new();
    let mut k = 0;
    while let Some(first) = (k..ops.len()).find(|&n| ops[n] != Op::Same) {
        // A hunk: CONTEXT lines before its first change, to CONTEXT lines after its last one
        // that is not followed by another change within 2 × CONTEXT.
        let start = first.saturating_sub(CONTEXT).max(k);
        let mut end = first;
        while let Some(next) =
            (end + 1..ops.len().min(end + 2 * CONTEXT + 2)).find(|&n| ops[n] != Op::Same)
        {
            end = next;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let count = |op: Op| {
            ops[start..end]
                .iter()
                .filter(|&&o| o == op || o == Op::Same)
                .count()
        };
        let (old_len, new_len) = (count(Op::Removed), count(Op::Added));
        let (old_at, new_at) = at[start];
        out.push(format!(
            "@@ -{} +{} @@",
            range(old_at, old_len),
            range(new_at, new_len)
        ));
        for n in start..end {
            let (i, j) = at[n];
            out.push(match ops[n] {
                Op::Same => format!(" {}", a[i]),
                Op::Removed => format!("-{}", a[i]),
                Op::Added => format!("+{}", b[j]),
            });
        }
        k = end;
    }
    out
}

/// `start,len` with 1-based lines; an empty range names the line before it, as diff does.
fn range(start: usize, len: usize) -> String {
    if len == 0 {
        format!("{start},0")
    } else {
        format!("{},{len}", start + 1)
    }
}

/// The edit script from `a` to `b`.
fn ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops = vec![Op::Same; head];
    let (n, m) = (a_mid.len(), b_mid.len());
    if n.saturating_mul(m) > MAX_CELLS {
        ops.extend(std::iter::repeat_n(Op::Removed, n));
        ops.extend(std::iter::repeat_n(Op::Added, m));
    } else {
        // lcs[i * (m + 1) + j]: the longest common subsequence of a_mid[i..] and b_mid[j..].
        let width = m + 1;
        let mut lcs = vec![0u32; (n + 1) * width];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * width + j] = if a_mid[i] == b_mid[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n && j < m {
            if a_mid[i] == b_mid[j] {
                ops.push(Op::Same);
                (i, j) = (i + 1, j + 1);
            } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
                ops.push(Op::Removed);
                i += 1;
            } else {
                ops.push(Op::Added);
                j += 1;
            }
        }
        ops.extend(std::iter::repeat_n(Op::Removed, n - i));
        ops.extend(std::iter::repeat_n(Op::Added, m - j));
    }
    ops.extend(std::iter::repeat_n(Op::Same, tail));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines `1` to `n`, each passed through `edit` (`None` removes it).
    fn lines(n: u32, edit: impl Fn(u32) -> Option<String>) -> String {
        (1..=n).filter_map(|l| edit(l).map(|t| t + "\n")).collect()
    }

    fn same(n: u32) -> Option<String> {
        Some(n.to_string())
    }

    #[test]
    fn equal_texts_have_no_hunks() {
        assert!(unified("a\nb\n", "a\nb\n").is_empty());
        assert!(unified("", "").is_empty());
    }

    #[test]
    fn a_changed_line_is_shown_with_three_lines_of_context() {
        let new = lines(10, |n| if n == 5 { Some("five".into()) } else { same(n) });
        assert_eq!(
            unified(&lines(10, same), &new),
            [
                "@@ -2,7 +2,7 @@",
                " 2",
                " 3",
                " 4",
                "-5",
                "+five",
                " 6",
                " 7",
                " 8"
            ]
        );
    }

    #[test]
    fn distant_changes_are_separate_hunks_and_near_ones_share_one() {
        let old = lines(30, same);
        let far = lines(30, |n| match n {
            2 => Some("two".into()),
            25 => None,
            n => same(n),
        });
        let hunks: Vec<String> = unified(&old, &far)
            .into_iter()
            .filter(|l| l.starts_with("@@"))
            .collect();
        assert_eq!(hunks, ["@@ -1,5 +1,5 @@", "@@ -22,7 +22,6 @@"]);
        let near = lines(30, |n| match n {
            10 | 15 => Some(format!("{n}!")),
            n => same(n),
        });
        let diff = unified(&old, &near);
        assert_eq!(diff.iter().filter(|l| l.starts_with("@@")).count(), 1);
        assert_eq!(diff[0], "@@ -7,12 +7,12 @@");
    }

    #[test]
    fn lines_added_to_an_empty_text_or_all_removed() {
        assert_eq!(unified("", "a\nb\n"), ["@@ -0,0 +1,2 @@", "+a", "+b"]);
        assert_eq!(unified("a\n", ""), ["@@ -1,1 +0,0 @@", "-a"]);
    }

    #[test]
    fn a_table_too_large_gives_way_to_removing_all_and_adding_all() {
        let old = lines(2_100, same);
        let new = lines(2_100, |n| Some(format!("{n}'")));
        let diff = unified(&old, &new);
        assert_eq!(diff[0], "@@ -1,2100 +1,2100 @@");
        assert_eq!((diff[1].as_str(), diff[2101].as_str()), ("-1", "+1'"));
    }
}
