//! `ringfence matrix`: every allowed connection between workloads.
//!
//! With an inventory made of manifests, `--format txt` prints np-guard
//! netpol-analyzer's `list` lines (see `ringfence_core::connlist`), so the
//! connectivity of a set of manifests can be diffed with that tool's.

use std::fmt;
use std::io::Write;

use ringfence_core::{Compiled, Select};
use ringfence_driver::Pipeline;
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::Exit;
use crate::cmd::{common, output, stdin};
use crate::flags::{Format, MatrixArgs};

pub(crate) fn run(mut args: MatrixArgs) -> anyhow::Result<Exit> {
    let inv = &mut args.inventory;
    let _stdin = stdin::materialize(
        &mut [&mut inv.inventory, &mut inv.trivy],
        "--inventory, --trivy",
    )?;
    let pipeline = Pipeline::new();
    let session = match common::compile(&pipeline, &args.source, &args.inventory)? {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    let manifests = !session.inventory.clusters.is_empty()
        && session
            .inventory
            .clusters
            .iter()
            .all(|c| c.name == ringfence_inventory::MANIFESTS_CLUSTER);
    if manifests && args.format == Format::Txt {
        let mut out = std::io::stdout().lock();
        for line in session.compiled.connlist(&session.inventory) {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    } else {
        let select = ringfence_core::Select {
            from: args.from,
            to: args.to,
            namespaces: args.namespace,
        };
        let matrix = Matrix {
            compiled: &session.compiled,
            select: &select,
            summary: args.summary,
        };
        output::emit(args.format, &matrix)?;
    }
    Ok(Exit::Clean)
}

/// The matrix as `emit` writes it, computed while it is written: as text one
/// line at a time, as a document `{"connections": [...]}` (or, with
/// `--summary`, `{"pairs": [...]}`) element by element. Nothing is held
/// but the line being written.
struct Matrix<'a> {
    compiled: &'a Compiled,
    select: &'a Select,
    summary: bool,
}

impl fmt::Display for Matrix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.summary {
            self.compiled
                .matrix_summary_each(self.select, |s| writeln!(f, "{s}"))
        } else {
            self.compiled
                .matrix_each(self.select, |l| writeln!(f, "{l}"))
        }
    }
}

impl Serialize for Matrix<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut doc = s.serialize_struct("Matrix", 1)?;
        if self.summary {
            doc.serialize_field("pairs", &Seq(self, true))?;
        } else {
            doc.serialize_field("connections", &Seq(self, false))?;
        }
        doc.end()
    }
}

/// The lines (or pair summaries) as a sequence.
struct Seq<'a>(&'a Matrix<'a>, bool);

impl Serialize for Seq<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Matrix {
            compiled, select, ..
        } = self.0;
        let mut seq = s.serialize_seq(None)?;
        if self.1 {
            compiled.matrix_summary_each(select, |p| seq.serialize_element(&p))?;
        } else {
            compiled.matrix_each(select, |l| seq.serialize_element(&l))?;
        }
        seq.end()
    }
}
