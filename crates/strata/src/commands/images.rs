//! `strata images [REPOSITORY[:TAG]]`: list images as `docker images` does, one row per
//! repository and tag, `<none>` for untagged images, newest first.

use std::process::ExitCode;

use anyhow::Context;
use strata_image::Reference;

use crate::commands::Global;
use crate::output::{self, Table};
use crate::store::{self, Summary};

/// List images
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub filter: Option<String>,

    /// Show all images (strata keeps no intermediate images, so this is the default listing)
    #[arg(short, long)]
    pub all: bool,

    /// Show digests
    #[arg(long)]
    pub digests: bool,

    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,

    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,

    /// Format output: "table", "json", or a template such as '{{.Repository}}:{{.Tag}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// One output row, with docker's `{{json .}}` field names.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    containers: String,
    created_at: String,
    created_since: String,
    digest: String,
    #[serde(rename = "ID")]
    id: String,
    repository: String,
    shared_size: String,
    size: String,
    tag: String,
    unique_size: String,
    virtual_size: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let filter = match &args.filter {
        Some(f) => Some(
            Reference::parse_normalized(f).with_context(|| format!("invalid reference {f:?}"))?,
        ),
        None => None,
    };
    let format = args.format.as_deref().unwrap_or("table");
    let show_digests = args.digests || format.contains("{{.Digest}}");
    let mut rows = Vec::new();
    for summary in store::summaries(&store)? {
        rows.extend(rows_of(
            &summary,
            filter.as_ref(),
            show_digests,
            !args.no_trunc,
        ));
    }

    let mut out = String::new();
    if args.quiet {
        for row in &rows {
            out.push_str(&row.id);
            out.push('\n');
        }
    } else if format == "json" {
        for row in &rows {
            out.push_str(&output::go_json(row));
            out.push('\n');
        }
    } else if format == "table" {
        let mut header = vec!["REPOSITORY", "TAG"];
        if args.digests {
            header.push("DIGEST");
        }
        header.extend(["IMAGE ID", "CREATED", "SIZE"]);
        let mut table = Table::new(&header);
        for row in rows {
            let mut cells = vec![row.repository, row.tag];
            if args.digests {
                cells.push(row.digest);
            }
            let created = if row.created_since.is_empty() {
                "N/A".to_string()
            } else {
                row.created_since
            };
            cells.extend([row.id, created, row.size]);
            table.row(cells);
        }
        out = table.render();
    } else {
        for row in &rows {
            let whole = serde_json::to_value(row)?;
            let line = output::render_template(format, &whole, &|_| None)?;
            out.push_str(&line);
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// docker's rows for one image: a row per tag of each repository (times each digest when
/// digests are shown), digest-only rows for repositories without tags, or one `<none>` row.
fn rows_of(s: &Summary, filter: Option<&Reference>, digests: bool, trunc: bool) -> Vec<Row> {
    let parse = |n: &String| Reference::parse_normalized(n).ok();
    let matches = |r: &Reference| match filter {
        None => true,
        Some(f) => r.name() == f.name() && f.tag().is_none_or(|t| r.tag() == Some(t)),
    };
    let tags: Vec<Reference> = s
        .repo_tags
        .iter()
        .filter_map(parse)
        .filter(|r| matches(r))
        .collect();
    let pinned: Vec<Reference> = s
        .repo_digests
        .iter()
        .filter_map(parse)
        .filter(|r| matches(r))
        .collect();
    let row = |repository: String, tag: String, digest: String| Row {
        containers: "N/A".to_string(),
        created_at: s.created.map(output::go_time_string).unwrap_or_default(),
        created_since: s.created.map(output::created_since).unwrap_or_default(),
        digest,
        id: if trunc {
            s.image.config_digest.short()
        } else {
            s.image.config_digest.to_string()
        },
        repository,
        shared_size: "N/A".to_string(),
        size: output::size(s.size),
        tag,
        unique_size: "N/A".to_string(),
        virtual_size: output::size4(s.size),
    };
    if s.repo_tags.is_empty() && s.repo_digests.is_empty() {
        if filter.is_some() {
            return Vec::new();
        }
        return vec![row("<none>".into(), "<none>".into(), "<none>".into())];
    }
    let mut rows = Vec::new();
    let mut repos: Vec<String> = tags
        .iter()
        .chain(&pinned)
        .map(Reference::familiar_name)
        .collect();
    repos.sort();
    repos.dedup();
    for repo in repos {
        let repo_digests: Vec<String> = pinned
            .iter()
            .filter(|r| r.familiar_name() == repo)
            .filter_map(|r| r.digest().map(ToString::to_string))
            .collect();
        let repo_tags: Vec<&str> = tags
            .iter()
            .filter(|r| r.familiar_name() == repo)
            .filter_map(|r| r.tag())
            .collect();
        if repo_tags.is_empty() {
            if digests {
                for d in &repo_digests {
                    rows.push(row(repo.clone(), "<none>".into(), d.clone()));
                }
            } else {
                rows.push(row(repo.clone(), "<none>".into(), String::new()));
            }
            continue;
        }
        for tag in repo_tags {
            if !digests || repo_digests.is_empty() {
                rows.push(row(repo.clone(), tag.to_string(), "<none>".into()));
            } else {
                for d in &repo_digests {
                    rows.push(row(repo.clone(), tag.to_string(), d.clone()));
                }
            }
        }
    }
    rows
}
