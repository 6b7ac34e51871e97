//! The sections that name files: `rule_files`, `analysis_files` (with the
//! inline `[[analysis]]` templates) and `kayenta_configs`, each a glob
//! resolved against the config file's directory and loaded with every
//! error placed where the fix goes.

use super::*;

/// What the file-loading sections produced.
pub(super) struct Files {
    pub(super) rule_files: Vec<PathBuf>,
    pub(super) rules: Vec<(PathBuf, crate::rules::RuleFile)>,
    pub(super) analysis_files: Vec<PathBuf>,
    pub(super) analyses: Vec<crate::analysis::template::Template>,
    pub(super) kayenta_configs: Vec<KayentaConfigFile>,
}

/// The raw keys that name files.
pub(super) struct FileKeys<'a> {
    pub(super) rule_files: &'a [Spanned<String>],
    pub(super) analysis_files: &'a [Spanned<String>],
    pub(super) analysis: &'a [Spanned<crate::analysis::template::RawTemplate>],
    pub(super) kayenta_configs: &'a [Spanned<String>],
}

/// Loads every file the config names.
pub(super) fn load_files(cx: &mut Ctx<'_>, file: &Path, text: &str, raw: FileKeys<'_>) -> Files {
    // Rule files: globs against the config's directory; every rule error is
    // reported with its file and position.
    let base = file.parent().unwrap_or(Path::new("."));
    let mut rule_files = Vec::new();
    let mut rules = Vec::new();
    for pat in raw.rule_files {
        for path in cx.expand(base, pat, "rule_files") {
            match crate::rules::load(&path) {
                Ok(rf) => rules.push((path.clone(), rf)),
                Err(errs) => {
                    let prefix = format!("{}: ", path.display());
                    for e in errs {
                        let e = e.strip_prefix(&prefix).unwrap_or(&e);
                        // "L:C: message" is placed in the rule file itself;
                        // anything else at the rule_files entry.
                        match split_position(e) {
                            Some((line, column, message)) => cx.errors.push(ConfigError {
                                file: path.clone(),
                                line,
                                column,
                                message: message.to_string(),
                            }),
                            None => {
                                cx.error(pat.span(), format!("rule_files: {}: {e}", path.display()))
                            }
                        }
                    }
                }
            }
            rule_files.push(path);
        }
    }

    // Analysis templates: files first, then inline tables; names are unique.
    let mut analysis_files = Vec::new();
    let mut analyses: Vec<crate::analysis::template::Template> = Vec::new();
    for pat in raw.analysis_files {
        let paths = cx.expand(base, pat, "analysis_files");
        if paths.is_empty() && !pat.get_ref().contains(['*', '?', '[']) {
            cx.error(
                pat.span(),
                format!(
                    "analysis_files: {} does not exist",
                    resolve(base, pat.get_ref()).display()
                ),
            );
        }
        for path in paths {
            match crate::analysis::template::load(&path) {
                Ok(ts) => analyses.extend(ts),
                Err(errs) => {
                    for e in errs {
                        if e.line == 0 {
                            cx.error(
                                pat.span(),
                                format!("analysis_files: {}: {}", e.file.display(), e.message),
                            );
                        } else {
                            cx.errors.push(e);
                        }
                    }
                }
            }
            analysis_files.push(path);
        }
    }
    let file_name = file.display().to_string();
    match crate::analysis::template::compile_all(
        &file_name,
        text,
        raw.analysis.iter().map(|t| (t.span(), t.get_ref())),
    ) {
        Ok(ts) => analyses.extend(ts),
        Err(errs) => cx.errors.extend(errs),
    }
    let mut kayenta_configs: Vec<KayentaConfigFile> = Vec::new();
    for pat in raw.kayenta_configs {
        let paths = cx.expand(base, pat, "kayenta_configs");
        // File-level problems are placed at the kayenta_configs entry.
        let (pl, pc) = line_col(text, pat.span().start);
        let at_entry = |path: &Path, message: String| ConfigError {
            file: file.to_path_buf(),
            line: pl,
            column: pc,
            message: format!("kayenta_configs: {}: {message}", path.display()),
        };
        for path in paths {
            let name = path.display().to_string();
            let loaded = crate::diag::read_text(&path, "Kayenta canary config")
                .map_err(|e| {
                    if e.line == 0 {
                        at_entry(&path, e.message)
                    } else {
                        e
                    }
                })
                .and_then(|text| {
                    let cfg = crate::analysis::kayenta::parse_canary_config(&name, &text).map_err(
                        |e| {
                            let message = e
                                .to_string()
                                .split_once(": ")
                                .map_or(e.to_string(), |(_, m)| m.to_string());
                            match &e {
                                crate::analysis::kayenta::KayentaError::Json {
                                    line,
                                    column,
                                    ..
                                } => ConfigError {
                                    file: path.clone(),
                                    line: *line,
                                    column: *column,
                                    message,
                                },
                                _ => at_entry(&path, message),
                            }
                        },
                    )?;
                    let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    Ok((cfg, raw))
                });
            match loaded {
                Ok((config, raw_json)) => {
                    let id = config.id.clone().unwrap_or_else(|| {
                        path.file_stem()
                            .map(|s| s.to_string_lossy().to_string())
                            .unwrap_or_default()
                    });
                    let updated_ms = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    if kayenta_configs.iter().any(|k| k.id == id) {
                        cx.errors.push(at_entry(
                            &path,
                            format!("Kayenta canary config id {id:?} is used twice"),
                        ));
                    }
                    kayenta_configs.push(KayentaConfigFile {
                        id,
                        path,
                        updated_ms,
                        raw: raw_json,
                        config,
                    });
                }
                Err(e) => cx.errors.push(e),
            }
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for t in &analyses {
        if let Some(first) = seen.insert(t.name.clone(), t.source.clone()) {
            // `source` is "file:line" of the template's name.
            let (src, line) = t
                .source
                .rsplit_once(':')
                .and_then(|(f, l)| Some((PathBuf::from(f), l.parse().ok()?)))
                .unwrap_or_else(|| (file.to_path_buf(), 1));
            cx.errors.push(ConfigError {
                file: src,
                line,
                column: 1,
                message: format!(
                    "analysis template {:?} is defined twice ({first} and {})",
                    t.name, t.source
                ),
            });
        }
    }

    Files {
        rule_files,
        rules,
        analysis_files,
        analyses,
        kayenta_configs,
    }
}
