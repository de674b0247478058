// The peer of the template benchmark: Node's handlebars (the original system's engine)
// rendering the same templates with the same variables, compiled once, in a loop.
// It gets the same date syntax rewrite and equivalent `money`/date helpers, so both sides do
// the same work. Usage: node render.js cases.json N  → JSON lines {name, ms, n, sample}
'use strict';
const Handlebars = require('handlebars');
const fs = require('fs');

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const N = parseInt(process.argv[3] || '100000', 10);

// {{when:PATTERN}} -> {{__crm_date when "PATTERN"}}, as crm_integrations rewrites it.
const rewrite = (src) => src.replace(
  /\{\{(?![{#/!^>&*~])\s*([A-Za-z_@.][\w.\-/@[\]]*)\s*:([^}"\\]+?)\s*\}\}/g,
  (_, path, pattern) => (path === 'else' ? _ : `{{__crm_date ${path} "${pattern.trim()}"}}`));

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
  'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const formatters = new Map();
function wallClock(value, tz) {
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const [y, m, d] = value.split('-').map(Number);
    return { y, m, d, H: 0, i: 0, s: 0, wd: new Date(Date.UTC(y, m - 1, d)).getUTCDay(), off: '' };
  }
  const date = typeof value === 'number' ? new Date(Math.abs(value) >= 1e11 ? value : value * 1000) : new Date(value);
  if (isNaN(date)) return null;
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, year: 'numeric', month: 'numeric', day: 'numeric',
      hour: 'numeric', minute: 'numeric', second: 'numeric', hourCycle: 'h23', weekday: 'short', timeZoneName: 'longOffset' });
    formatters.set(tz, f);
  }
  const p = {};
  for (const { type, value: v } of f.formatToParts(date)) p[type] = v;
  const off = p.timeZoneName === 'GMT' ? '+00:00' : p.timeZoneName.slice(3);
  return { y: +p.year, m: +p.month, d: +p.day, H: +p.hour, i: +p.minute, s: +p.second,
    wd: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(p.weekday), off };
}
const pad = (n) => (n < 10 ? '0' + n : '' + n);
function formatDate(value, pattern, tz) {
  const w = wallClock(value, tz);
  if (!w) return String(value);
  const h12 = w.H % 12 === 0 ? 12 : w.H % 12;
  return pattern.replace(/\[([^\]]*)\]|YYYY|MMMM|dddd|ddd|MMM|YY|MM|DD|HH|hh|mm|ss|M|D|H|h|A|a|Z/g, (t, lit) => {
    if (lit !== undefined) return lit;
    switch (t) {
      case 'YYYY': return String(w.y); case 'YY': return pad(w.y % 100);
      case 'MMMM': return MONTHS[w.m - 1]; case 'MMM': return MONTHS[w.m - 1].slice(0, 3);
      case 'MM': return pad(w.m); case 'M': return String(w.m);
      case 'DD': return pad(w.d); case 'D': return String(w.d);
      case 'dddd': return DAYS[w.wd]; case 'ddd': return DAYS[w.wd].slice(0, 3);
      case 'HH': return pad(w.H); case 'H': return String(w.H);
      case 'hh': return pad(h12); case 'h': return String(h12);
      case 'mm': return pad(w.i); case 'ss': return pad(w.s);
      case 'A': return w.H < 12 ? 'AM' : 'PM'; case 'a': return w.H < 12 ? 'am' : 'pm';
      case 'Z': return w.off;
    }
    return t;
  });
}
const SYMBOLS = { USD: '$', CAD: 'CA$', AUD: 'A$', NZD: 'NZ$', MXN: 'MX$', EUR: '€', GBP: '£', JPY: '¥', INR: '₹' };
function money(cents, currency) {
  const code = (typeof currency === 'string' ? currency : 'usd').toUpperCase();
  const abs = Math.abs(cents);
  const units = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const body = `${units}.${pad(abs % 100)}`;
  const sign = cents < 0 ? '-' : '';
  return SYMBOLS[code] ? `${sign}${SYMBOLS[code]}${body}` : `${sign}${body} ${code}`;
}

const hb = Handlebars.create();
hb.registerHelper('__crm_date', function (value, pattern, options) {
  if (value === undefined || value === null) return '';
  const tz = (options.data.root && options.data.root._timezone) || 'UTC';
  return formatDate(value, pattern, tz);
});
hb.registerHelper('money', (cents, currency) => (cents === undefined || cents === null ? '' : money(cents, currency)));

for (const c of cases) {
  const render = hb.compile(rewrite(c.template));
  let sample = '';
  for (let i = 0; i < 1000; i++) sample = render(c.vars);  // warm up the JIT
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  for (let i = 0; i < N; i++) bytes += render(c.vars).length;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ name: c.name, ms, n: N, bytes, sample }) + '\n');
}
