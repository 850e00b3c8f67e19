//! The benchmark's tables: rows in aligned columns, the first left-aligned, the rest
//! right-aligned (numbers).

/// Prints `header` and `rows` in aligned columns.
pub fn table<const N: usize>(header: &[&str; N], rows: impl Iterator<Item = [String; N]>) {
    let rows: Vec<Vec<String>> = rows.map(Vec::from).collect();
    print_rows(&header.map(str::to_owned), &rows);
}

/// [`table`] for rows whose width is known only at run time.
pub fn print_rows(header: &[String], rows: &[Vec<String>]) {
    let all: Vec<&[String]> = std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            all.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &all {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, w) in row.iter().zip(&widths).skip(1) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        println!("{line}");
    }
}
