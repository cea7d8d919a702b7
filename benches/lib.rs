//! Shared helpers for dialhound's criterion benchmarks.

use std::fmt::Write;

/// A customer spreadsheet of `rows` valid, distinct CN mobile numbers written in
/// mixed styles, with the example schema's attribute columns. Deterministic.
pub fn customers_csv(rows: usize) -> String {
    const PREFIXES: [&str; 8] = ["130", "135", "138", "139", "150", "158", "186", "188"];
    const NAMES: [&str; 8] = [
        "王伟",
        "李娜",
        "张敏",
        "刘洋",
        "陈杰",
        "Alice Chen",
        "杨静",
        "赵磊",
    ];
    let mut out = String::with_capacity(rows * 96);
    out.push_str("customer_id,name,phone,zone,intent,cart_value,cart_added,paid,tags\n");
    for row in 0..rows {
        let prefix = PREFIXES[row % PREFIXES.len()];
        // Distinct per row: the row number spread over eight digits.
        let subscriber = (row as u64 * 7_919) % 100_000_000;
        let phone = match row % 3 {
            0 => format!("{prefix}{subscriber:08}"),
            1 => format!(
                "+86 {prefix} {:04} {:04}",
                subscriber / 10_000,
                subscriber % 10_000
            ),
            _ => format!(
                "{prefix}-{:04}-{:04}",
                subscriber / 10_000,
                subscriber % 10_000
            ),
        };
        let _ = writeln!(
            out,
            "C{row:07},{},{phone},Asia/Shanghai,{},{}.{:02},2026-11-{:02} 10:30,{},vip;new",
            NAMES[row % NAMES.len()],
            ["high", "medium", "low"][row % 3],
            20 + row % 1_980,
            row % 100,
            1 + row % 28,
            if row % 4 == 0 { "yes" } else { "no" },
        );
    }
    out
}
