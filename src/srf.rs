//! Set-returning functions in materialize mode: all rows handed to Postgres at once.
//!
//! pgrx's `TableIterator` returns one row per call (value-per-call): each row costs a call
//! through the function manager and pgrx's guard, a heap tuple, and the executor's copy of it
//! into its own tuplestore — 8,000 instructions a row for `crm._validate_email_rows`, about 5 %
//! of an enqueue. pgrx has no materialize mode, so [`TableIterator`] here is one: declared exactly
//! like a `TableIterator` of the same row (`RETURNS TABLE (…)`), it fills the tuplestore the
//! executor reads in the one call. Meant for functions whose rows are all computed up front
//! anyway (a validated batch is), never for an unbounded stream.
//!
//! It is named `TableIterator` because pgrx's schema generator recognizes a function that
//! returns a table by that name (the last segment of the return type's path) and then reads
//! the columns from its `name!` tuple; `srf::TableIterator` in a signature is this one.

use pgrx::callconv::RetAbi;
use pgrx::iter::TableIterator as PgrxTableIterator;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::{pg_sys, IntoHeapTuple, PgSqlErrorCode};

/// Rows returned in materialize mode; SQL sees `RETURNS TABLE (…)` as for pgrx's
/// `TableIterator<'static, Row>`.
pub struct TableIterator<Row>(pub Vec<Row>);

// SAFETY: the same SQL declaration as TableIterator of the same row, which is what the
// RetAbi below returns.
unsafe impl<Row> SqlTranslatable for TableIterator<Row>
where
    PgrxTableIterator<'static, Row>: SqlTranslatable,
{
    const TYPE_IDENT: &'static str =
        <PgrxTableIterator<'static, Row> as SqlTranslatable>::TYPE_IDENT;
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        <PgrxTableIterator<'static, Row> as SqlTranslatable>::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Err(ArgumentError::Table);
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        <PgrxTableIterator<'static, Row> as SqlTranslatable>::RETURN_SQL;
}

// SAFETY: box_ret_in_fcinfo follows the materialize protocol of funcapi.h (what Postgres'
// InitMaterializedSRF does): a tuplestore in the query's memory, the result's descriptor, and
// returnMode/setResult/setDesc set on the ReturnSetInfo; the function is called once.
unsafe impl<Row> RetAbi for TableIterator<Row>
where
    Row: IntoHeapTuple,
{
    type Item = Self;
    type Ret = Self;

    fn to_ret(self) -> Self::Ret {
        self
    }

    unsafe fn box_ret_in_fcinfo(fcinfo: pg_sys::FunctionCallInfo, ret: Self::Ret) -> pg_sys::Datum {
        // SAFETY: fcinfo is the call's (pgrx's wrapper); resultinfo is checked before use.
        unsafe {
            let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
            let materialize = pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32;
            if rsinfo.is_null()
                || (*(rsinfo as *mut pg_sys::Node)).type_ != pg_sys::NodeTag::T_ReturnSetInfo
                || (*rsinfo).allowedModes & materialize == 0
            {
                pgrx::ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "set-valued function called in context that cannot accept a set"
                );
            }
            let per_query = (*(*rsinfo).econtext).ecxt_per_query_memory;
            let caller_context = pg_sys::MemoryContextSwitchTo(per_query);
            let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
            let class = pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut tupdesc);
            if class != pg_sys::TypeFuncClass::TYPEFUNC_COMPOSITE || tupdesc.is_null() {
                pg_sys::MemoryContextSwitchTo(caller_context);
                pgrx::ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    "a materialized set-returning function must return a row type"
                );
            }
            let random_access = (*rsinfo).allowedModes
                & pg_sys::SetFunctionReturnMode::SFRM_Materialize_Random as i32
                != 0;
            let store = pg_sys::tuplestore_begin_heap(random_access, false, pg_sys::work_mem);
            pg_sys::MemoryContextSwitchTo(caller_context);
            // (each row's datums and heap tuple are made in the call's memory; the tuplestore
            // copies the tuple into its own)
            for row in ret.0 {
                let tuple = row.into_heap_tuple(tupdesc);
                pg_sys::tuplestore_puttuple(store, tuple);
                pg_sys::heap_freetuple(tuple);
            }
            (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
            (*rsinfo).setResult = store;
            (*rsinfo).setDesc = tupdesc;
            pg_sys::Datum::from(0)
        }
    }

    unsafe fn move_into_fcinfo_fcx(self, _fcinfo: pg_sys::FunctionCallInfo) {}

    unsafe fn fill_fcinfo_fcx(&self, _fcinfo: pg_sys::FunctionCallInfo) {}
}

/// A `text[]` column, built with one `construct_array` (pgrx's `Vec<String>` conversion costs
/// 2,000 instructions for a one-element array: a quarter of a validated message's row).
pub struct TextArray(pub Vec<String>);

impl pgrx::IntoDatum for TextArray {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let mut elems: Vec<pg_sys::Datum> = self
            .0
            .iter()
            .map(|s| {
                // SAFETY: cstring_to_text_with_len copies `len` bytes into a palloc'd text.
                let text =
                    unsafe { pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32) };
                pg_sys::Datum::from(text)
            })
            .collect();
        // SAFETY: `elems` holds `len` text datums; text is varlena (-1), not by value, int-aligned.
        let array = unsafe {
            pg_sys::construct_array(
                elems.as_mut_ptr(),
                elems.len() as i32,
                pg_sys::TEXTOID,
                -1,
                false,
                pg_sys::TYPALIGN_INT as std::ffi::c_char,
            )
        };
        Some(pg_sys::Datum::from(array))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTARRAYOID
    }
}

// SAFETY: declared as text[], what into_datum builds.
unsafe impl SqlTranslatable for TextArray {
    const TYPE_IDENT: &'static str = <Vec<String> as SqlTranslatable>::TYPE_IDENT;
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        <Vec<String> as SqlTranslatable>::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        <Vec<String> as SqlTranslatable>::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        <Vec<String> as SqlTranslatable>::RETURN_SQL;
}
