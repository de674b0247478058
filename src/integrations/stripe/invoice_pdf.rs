//! `crm._invoice_pdf`: the invoice document (`crm._invoice_document`, sql/payments.sql) as PDF
//! bytes, rendered by `crm_core::documents::invoice_pdf`.

use crate::errors::raise;
use crate::json_arg::{parse_json_as, JsonbArg};
use crm_core::documents::invoice_pdf::{self, Invoice};
use pgrx::prelude::*;

#[pg_extern(immutable, parallel_safe, strict)]
fn _invoice_pdf(document: JsonbArg) -> Vec<u8> {
    // crm._invoice_document cuts every field; this bounds any other caller
    let document = document.text();
    if document.len() > 1024 * 1024 {
        raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "an invoice document over 1 MB",
            None,
            "crm_integrations.invoice_pdf",
        );
    }
    let invoice: Invoice = parse_json_as(&document).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("invoice document: {e}"),
            None,
            "crm_integrations.invoice_pdf",
        )
    });
    invoice_pdf::render(&invoice).unwrap_or_else(|e| {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            e,
            None,
            "crm_integrations.invoice_pdf",
        )
    })
}
