//! The loader's rules for one case file: the summary's style, and the expansion of near-miss
//! families into one step per variant.

use std::path::Path;

use super::{CatalogueError, err};
use crate::language::{Action, Step};

/// Summary style (JSON-Schema-Test-Suite lint): present tense, short, no modal verbs.
pub(super) fn lint_summary(s: &str) -> Result<(), String> {
    let first_word = s.split_whitespace().next().unwrap_or_default();
    let acronym = first_word
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == 's');
    if s.len() > 90 || (s.starts_with(char::is_uppercase) && !acronym) || s.ends_with('.') {
        return Err("field `summary`: at most 90 characters, lower-case start (or an acronym), no final period".into());
    }
    for banned in ["should", "must", "test that"] {
        if s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != ' ')
            .any(|w| w.contains(banned))
        {
            return Err(format!(
                "field `summary`: state the conformant behaviour as a fact, without `{banned}`"
            ));
        }
    }
    Ok(())
}

/// Expands each step with `near_miss` variants into one step per variant, named
/// `<name or action>/<variant>`, with every `{{ref | near}}` of its parameters taking that
/// variant. A step that lists variants must vary something, and only known variants. Returns
/// the steps and how many a family made.
pub(super) fn expand_near_misses(steps: Vec<Step>, path: &Path) -> Result<(Vec<Step>, usize), CatalogueError> {
    let marker = regex::Regex::new(r"\|\s*near\s*\}\}").map_err(|e| err(path, e.to_string()))?;
    let mut out = Vec::with_capacity(steps.len());
    let mut made = 0;
    for (i, step) in steps.into_iter().enumerate() {
        if step.near_miss.is_empty() {
            out.push(step);
            continue;
        }
        let params = serde_json::to_string(&step.action).map_err(|e| err(path, e.to_string()))?;
        if !marker.is_match(&params) {
            return Err(err(
                path,
                format!("field `step[{i}].near_miss`: no parameter holds a `{{{{ref | near}}}}` reference to vary"),
            ));
        }
        let base = step.name.clone().unwrap_or_else(|| format!("{}-{}", step.action.name(), i + 1));
        for variant in &step.near_miss {
            if !crate::nearmiss::is_variant(variant) {
                let known: Vec<&str> = crate::nearmiss::VARIANTS.iter().map(|(v, _)| *v).collect();
                return Err(err(
                    path,
                    format!("field `step[{i}].near_miss`: `{variant}` is not one of {}", known.join(", ")),
                ));
            }
            let varied = marker.replace_all(&params, format!("| near:{variant}}}}}").as_str());
            let action: Action = serde_json::from_str(&varied).map_err(|e| err(path, format!("step[{i}]: {e}")))?;
            out.push(Step {
                name: Some(format!("{base}/{variant}")),
                advance: step.advance.clone(),
                expect: step.expect.clone(),
                replica: step.replica,
                settle: step.settle,
                near_miss: Vec::new(),
                action,
            });
            made += 1;
        }
    }
    Ok((out, made))
}
