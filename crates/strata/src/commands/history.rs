//! `strata history IMAGE`: the image's history, newest first, as `docker history` prints it:
//! only the top row carries the IMAGE ID (strata, like docker for pulled or loaded images, has
//! no intermediate images), the others show `<missing>`.

use std::process::ExitCode;

use crate::commands::Global;
use crate::output::{self, Table};
use crate::store;

/// Show the history of an image
#[derive(Debug, clap::Args)]
pub struct Args {
    pub image: String,

    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub human: bool,

    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,

    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,

    /// Format output: "table", "json", or a template such as '{{.CreatedBy}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// One row with docker's `{{json .}}` field names.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    comment: String,
    created_at: String,
    created_by: String,
    created_since: String,
    #[serde(rename = "ID")]
    id: String,
    size: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let image = store::resolve(&store, &args.image)?;
    let config = &image.config;
    let sizes = store::layer_sizes(&store, &image)?;
    let trunc = !args.no_trunc;

    let mut rows = Vec::new();
    for (entry, diff_id) in config.history_layers()?.into_iter().rev() {
        let size = diff_id
            .and_then(|d| sizes.iter().find(|(id, _)| *id == d).map(|(_, s)| *s))
            .unwrap_or(0);
        let created = entry
            .created()
            .as_deref()
            .and_then(strata_image::config::parse_time);
        let created_by = entry
            .created_by()
            .clone()
            .unwrap_or_default()
            .replace('\t', " ");
        let created_at = created.map(output::rfc3339).unwrap_or_default();
        rows.push(Row {
            comment: entry.comment().clone().unwrap_or_default(),
            created_since: match (created, args.human) {
                (Some(t), true) => output::created_since(t),
                (Some(_), false) => created_at.clone(),
                (None, _) => "N/A".to_string(),
            },
            created_at,
            created_by: if trunc {
                output::ellipsis(&created_by, 45)
            } else {
                created_by
            },
            id: "<missing>".to_string(),
            size: if args.human {
                output::size(size)
            } else {
                size.to_string()
            },
        });
    }
    if let Some(top) = rows.first_mut() {
        top.id = if trunc {
            image.config_digest.short()
        } else {
            image.config_digest.to_string()
        };
    }

    let format = args.format.as_deref().unwrap_or("table");
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
        let mut table = Table::new(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
        for row in rows {
            table.row(vec![
                row.id,
                row.created_since,
                row.created_by,
                row.size,
                row.comment,
            ]);
        }
        out = table.render();
    } else {
        for row in &rows {
            let whole = serde_json::to_value(row)?;
            out.push_str(&output::render_template(format, &whole, &|_| None)?);
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
