//! A work budget for rendering, and the place where a render can be interrupted.
//!
//! The output limit alone does not bound a render: nested `{{#each}}` over a few hundred
//! elements that writes nothing runs for minutes. handlebars offers no hook per iteration, so
//! at compile time every `{{#each}}` body gets a first element `{{__crm_step N}}`, N being the
//! number of elements the body holds: each iteration then charges what it is about to
//! evaluate. The top level is charged once per render. The sum is close to the number of
//! elements evaluated, whatever the nesting; past `max_steps` the render fails.
//!
//! Each charge also calls the caller's checkpoint, which in a backend checks for a pending
//! cancel or timeout (it raises from there) and in the email worker for SIGTERM.

use handlebars::template::{Template, TemplateElement, TemplateMapping};
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub const STEP_HELPER: &str = "__crm_step";

/// Called at every charge; returns true to stop the render (it then fails as interrupted).
pub type Checkpoint = fn() -> bool;

pub fn never_interrupted() -> bool {
    false
}

/// One render's budget, shared with the step helper (helpers must be `Send + Sync`).
pub struct Budget {
    used: AtomicU64,
    max: AtomicU64,
    exceeded: AtomicBool,
    interrupted: AtomicBool,
    checkpoint: Mutex<Checkpoint>,
}

impl Budget {
    pub fn new() -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicU64::new(0),
            max: AtomicU64::new(u64::MAX),
            exceeded: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
            checkpoint: Mutex::new(never_interrupted),
        })
    }

    /// Start a render with `max` steps.
    pub fn reset(&self, max: u64, checkpoint: Checkpoint) {
        self.used.store(0, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
        self.interrupted.store(false, Ordering::Relaxed);
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = checkpoint;
    }

    /// Charge `n` steps; false when the budget is spent or the checkpoint says stop.
    pub fn charge(&self, n: u64) -> bool {
        let checkpoint = *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        if checkpoint() {
            self.interrupted.store(true, Ordering::Relaxed);
            return false;
        }
        let used = self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if used > self.max.load(Ordering::Relaxed) {
            self.exceeded.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

pub fn register(reg: &mut Handlebars<'static>, budget: Arc<Budget>) {
    reg.register_helper(
        STEP_HELPER,
        Box::new(
            move |h: &Helper,
                  _: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  _: &mut dyn Output|
                  -> HelperResult {
                let n = h.param(0).and_then(|p| p.value().as_u64()).unwrap_or(1);
                if budget.charge(n.max(1)) {
                    Ok(())
                } else {
                    Err(RenderErrorReason::Other("work budget".into()).into())
                }
            },
        ),
    );
}

/// Elements in `t`, nested ones included: what one evaluation of `t` costs at most (per
/// element) before its own loops. Iterative; `t` is already bounded in depth.
pub fn weight(t: &Template) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        n += t.elements.len() as u64;
        for el in &t.elements {
            if let TemplateElement::HelperBlock(ht) = el {
                stack.extend([&ht.template, &ht.inverse].into_iter().flatten());
            }
        }
    }
    n
}

/// Put `{{__crm_step N}}` at the start of every `{{#each}}` body (see the module comment).
pub fn instrument(t: &mut Template) {
    for el in t.elements.iter_mut() {
        if let TemplateElement::HelperBlock(ht) = el {
            let is_each = ht.name.as_name() == Some("each");
            if let Some(body) = ht.template.as_mut() {
                instrument(body);
                if is_each {
                    let cost = weight(body) + 1;
                    let (step, mapping) = step_element(cost);
                    body.elements.insert(0, step);
                    body.mapping.insert(0, mapping);
                }
            }
            if let Some(inverse) = ht.inverse.as_mut() {
                instrument(inverse);
            }
        }
    }
}

fn step_element(cost: u64) -> (TemplateElement, TemplateMapping) {
    let mut t = Template::compile(&format!("{{{{{STEP_HELPER} {cost}}}}}"))
        .expect("the step expression parses");
    (t.elements.remove(0), t.mapping.remove(0))
}
