//! Documents we render for customers: the invoice PDF.

pub mod invoice_pdf;
