//! `--json`: the server's answer indented, exactly as sent otherwise (key order, number
//! spelling and string escapes kept, which a parse-and-print round trip would not keep).

/// `json` (checked to be one JSON value) re-indented by two spaces per level.
pub fn pretty(json: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json)
        .map_err(|e| format!("the server's answer is not JSON: {e}"))?;
    let text = std::str::from_utf8(json).map_err(|e| format!("the server's answer: {e}"))?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Skip whitespace to see whether the container is empty.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn indents_and_keeps_order_and_strings() {
        let got =
            pretty(br#"{"z":1,"a":[true,null,{}],"s":"x: {\"y\", [1]}","e":[],"n":1.50}"#).unwrap();
        let want = "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    {}\n  ],\n  \
                    \"s\": \"x: {\\\"y\\\", [1]}\",\n  \"e\": [],\n  \"n\": 1.50\n}";
        assert_eq!(got, want);
        // The result is the same JSON value.
        let a: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(a["s"], "x: {\"y\", [1]}");
        assert_eq!(pretty(b"[ ]").unwrap(), "[]");
        assert!(pretty(b"{\"a\":").unwrap_err().contains("not JSON"));
    }
}
