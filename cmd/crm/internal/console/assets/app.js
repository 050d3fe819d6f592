// The CRM web console: one module, no build step. It reads and writes through the /v1 API
// with the bearer token the user signs in with, kept in session storage only.
import { texts, words } from './i18n.js';

const TOKEN_KEY = 'crm.token';
const LANG_KEY = 'crm.lang';
const PIN_KEY = 'crm.audit.pinned_key';
const MIN_KEY = 'crm.min_position';

const app = {
  me: null,
  lang: 'en',
  travel: { position: null, knownAt: '', asOf: '' }, // what the time slider asks for
  owners: new Set(),
  page: null,
};

// ---------- text and formats ----------

function t(key, vars = {}) {
  const s = (texts[app.lang] && texts[app.lang][key]) || texts.en[key] || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ''));
}
function word(w) { return (words[app.lang] && words[app.lang][w]) || String(w ?? '').replaceAll('_', ' '); }
function zone() { return (app.me && app.me.business_tz) || 'UTC'; }
function locale() { return app.lang === 'ja' ? 'ja-JP' : 'en-US'; }

// money formats an amount in the currency's minor units: yen has none, so no decimals.
function money(amount, currency) {
  const f = new Intl.NumberFormat(locale(), { style: 'currency', currency });
  const digits = f.resolvedOptions().maximumFractionDigits;
  return f.format(amount / 10 ** digits);
}
function num(n, digits = 0) {
  if (n === null || n === undefined) return '—';
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(n);
}
function pct(r) { return r === null || r === undefined ? '—' : new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(r); }
function date(iso) {
  if (!iso) return '—';
  const f = (tz) => new Intl.DateTimeFormat(locale(), { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' });
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) return f('UTC').format(new Date(iso + 'T00:00:00Z')); // a business date already
  return f(zone()).format(new Date(iso));
}
function dateTime(iso) {
  if (!iso) return '—';
  return new Intl.DateTimeFormat(locale(), { timeZone: zone(), dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
}
// zoneOffset is the offset of the business zone from UTC at instant d, in minutes.
function zoneOffset(d) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-US', { timeZone: zone(), hourCycle: 'h23', year: 'numeric', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(d)) parts[p.type] = p.value;
  const asUTC = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
  return (asUTC - Math.floor(d.getTime() / 1000) * 1000) / 60000;
}
// zoned reads a wall-clock time ("YYYY-MM-DDTHH:MM[:SS]") in the business zone as RFC 3339.
function zoned(local) {
  const guess = new Date((local.length === 16 ? local + ':00' : local) + 'Z');
  return new Date(guess.getTime() - zoneOffset(guess) * 60000).toISOString();
}

// ---------- DOM ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);
function say(msg, cls = '') {
  const s = $('#status');
  s.replaceChildren(h('span', { class: cls }, msg));
}
function field(label, input) {
  if (!input.id) input.id = 'f-' + Math.random().toString(36).slice(2, 9);
  return h('div', {}, h('label', { for: input.id }, label), input);
}
function table(head, rows, opts = {}) {
  return h('table', { 'data-table': opts.name },
    opts.caption ? h('caption', { class: 'sr' }, opts.caption) : null,
    h('thead', {}, h('tr', {}, head.map(([text, cls]) => h('th', { scope: 'col', class: cls }, text)))),
    h('tbody', {}, rows));
}
// fig is a table cell holding one figure: the value as the API answered it (data-field,
// data-value) and as shown. The tables beside the charts hold every number a chart draws, for
// screen readers and for the browser tests, which compare them with the API's answers.
function fig(field, value, text, cls = 'num') {
  return h('td', { class: cls, 'data-field': field, 'data-value': value === null || value === undefined ? '' : String(value) }, text);
}
// Amounts of several currencies: [{currency, amount}] in the answer's order, or {JPY: amount}
// (and {JPY: {amount}}) by currency code; shown joined by " / ", kept as "JPY:123;USD:456".
const moneyListValue = (list, key = 'amount') => list.map(a => `${a.currency}:${a[key]}`).join(';');
const moneyListText = (list, key = 'amount') => list.map(a => money(a[key], a.currency)).join(' / ');
const byCurrency = (m, key) => Object.keys(m).sort().map(c => ({ currency: c, amount: key ? m[c][key] : m[c] }));
function options(values, selected, anyLabel) {
  return [anyLabel !== undefined ? h('option', { value: '' }, anyLabel) : null,
    ...values.map(v => h('option', { value: v, selected: v === selected }, word(v)))];
}

// ---------- the API ----------

class APIError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (token) init.headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
    if (method === 'POST' && !init.headers['Idempotency-Key']) init.headers['Idempotency-Key'] = crypto.randomUUID();
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = text; } }
  if (res.status === 401) {
    signOut(t('signedOut'));
    throw new APIError(401, data);
  }
  if (!res.ok) throw new APIError(res.status, data);
  if (method !== 'GET' && data && typeof data.position === 'number') wrote(data.position);
  return { data, etag: res.headers.get('ETag') };
}
const get = async (path) => (await api(path)).data;

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? '?' + s : '';
}
// wrote remembers the log position of this tab's last command, so that the read models it
// reads next wait for it (min_position): a moved card is on the board after a reload.
function wrote(position) {
  const seen = +(sessionStorage.getItem(MIN_KEY) || 0);
  if (position > seen) sessionStorage.setItem(MIN_KEY, String(position));
}
function fresh() {
  const p = +(sessionStorage.getItem(MIN_KEY) || 0);
  return p ? { min_position: p } : {};
}
// travelParams are the time slider's parameters for a read-model query (or, when not
// travelling, the position this tab last wrote).
function travelParams() {
  if (!travelling()) return fresh();
  const p = {};
  if (app.travel.position) p.at_position = app.travel.position;
  else if (app.travel.knownAt) p.known_at = zoned(app.travel.knownAt);
  if (app.travel.asOf) p.as_of = zoned(app.travel.asOf + 'T23:59:59');
  return p;
}
function travelling() { return !!(app.travel.position || app.travel.knownAt || app.travel.asOf); }

function can(perm) { return !!(app.me && app.me.permissions.includes(perm)); }

// ---------- sign-in and navigation ----------

const pages = [
  { id: 'board', perm: 'read', render: boardPage },
  { id: 'contacts', perm: 'read', render: contactsPage },
  { id: 'journey', perm: 'read', render: journeyPage },
  { id: 'churn', perm: 'read', render: churnPage },
  { id: 'kpis', perm: 'read', render: kpisPage },
  { id: 'value', perm: 'read', render: valuePage },
  { id: 'tasks', perm: 'read', render: tasksPage },
  { id: 'ops', perm: 'read', render: opsPage },
  { id: 'audit', perm: 'verify', render: auditPage },
];

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(MIN_KEY);
  app.me = null;
  showSignIn(message);
}

function showSignIn(message) {
  $('#nav').hidden = true;
  $('#signout').hidden = true;
  $('#who').textContent = '';
  // No name: even a form sent without this script could not put the token in a URL.
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const err = h('p', { class: 'error', id: 'signin-error', role: 'alert' }, message || '');
  const form = h('form', { class: 'signin', id: 'signin', method: 'post', onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    try {
      await start();
    } catch (ex) {
      if (!(ex instanceof APIError && ex.status === 401)) err.textContent = t('loadFailed', { detail: ex.message });
      else $('#signin-error').textContent = t('badToken');
    }
  } }, h('h1', {}, t('signin')), h('p', {}, t('signinHelp')), field(t('token'), input), err, h('button', { type: 'submit' }, t('signin')));
  $('#main').replaceChildren(form);
  say('');
  input.focus();
}

async function start() {
  app.me = await get('/v1/me');
  $('#who').textContent = `${app.me.name} (${app.me.role})`;
  $('#signout').hidden = false;
  buildNav();
  if (!location.hash || location.hash === '#/' ) location.hash = '#/board';
  else await route();
}

function buildNav() {
  const nav = $('#nav');
  nav.replaceChildren(...pages.filter(p => can(p.perm)).map(p => h('a', { href: '#/' + p.id, 'data-page': p.id }, t(p.id))));
  nav.hidden = false;
}

async function route() {
  if (!app.me) return;
  const [, id, ...rest] = location.hash.replace(/^#/, '').split('/');
  const page = pages.find(p => p.id === id && can(p.perm)) || pages[0];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page.id) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  app.page = page.id;
  document.title = `${t(page.id)} — CRM`;
  const main = $('#main');
  delete main.dataset.page;
  delete main.dataset.ready;
  main.replaceChildren(h('p', {}, t('loading')));
  say('');
  try {
    await page.render(main, rest.map(decodeURIComponent));
    main.dataset.page = page.id + (rest.length ? '/' + rest.join('/') : '');
    performance.mark(`crm:${page.id}:shown`);
    main.dataset.ready = String(Date.now());
  } catch (ex) {
    if (ex instanceof APIError && ex.status === 401) return;
    main.replaceChildren(h('p', { class: 'error', role: 'alert' }, t('loadFailed', { detail: ex.message })));
  }
}

// ---------- time slider ----------

// travelBar draws the slider over the log, the known-at time and the as-of date, with the
// answer's freshness; changing any of them calls rerender.
function travelBar(freshness, rerender) {
  const head = freshness.head || 0;
  const at = app.travel.position || head;
  const label = h('output', { id: 'travel-position', for: 'travel-slider' }, num(at));
  const slider = h('input', { type: 'range', id: 'travel-slider', min: 1, max: Math.max(head, 1), value: at, step: 1,
    'aria-valuetext': String(at),
    oninput: () => { label.textContent = num(+slider.value); slider.setAttribute('aria-valuetext', slider.value); },
    onchange: () => { const v = +slider.value; app.travel.position = v >= head ? null : v; app.travel.knownAt = ''; rerender(); } });
  const known = h('input', { type: 'datetime-local', id: 'travel-known', step: 1, value: app.travel.knownAt });
  const asOf = h('input', { type: 'date', id: 'travel-asof', value: app.travel.asOf });
  const fresh = [t('freshness', { position: num(freshness.position), head: num(head) }), ' · ', t('lag', { events: num(freshness.lag ? freshness.lag.events : 0) })];
  if (freshness.at_position) fresh.push(' · ', t('atPosition', { position: num(freshness.at_position) }));
  if (freshness.known_at) fresh.push(' · ', dateTime(freshness.known_at));
  if (freshness.stale) fresh.push(' · ', t('stale'));
  return h('section', { class: 'travel', 'aria-label': t('travel') },
    h('strong', {}, t('travel')),
    h('span', {}, h('label', { for: 'travel-slider' }, t('position')), slider, ' ', label),
    field(t('knownAt'), known), field(t('asOf'), asOf),
    h('button', { type: 'button', id: 'travel-apply', onclick: () => {
      app.travel.knownAt = known.value; app.travel.asOf = asOf.value;
      if (known.value) app.travel.position = null;
      rerender();
    } }, t('apply')),
    h('button', { type: 'button', class: 'plain', id: 'travel-live', onclick: () => { app.travel = { position: null, knownAt: '', asOf: '' }; rerender(); } }, t('live')),
    h('span', { class: 'muted', id: 'freshness', 'data-position': freshness.position, 'data-head': head }, fresh));
}
function rerenderPage() { route(); }

// ---------- charts ----------

let echartsLoading = null;
// charts loads Apache ECharts on the first page that draws a chart, so the board does not wait for it.
function charts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  if (!echartsLoading) {
    echartsLoading = new Promise((resolve, reject) => {
      const s = h('script', { src: '/console/echarts.min.js' });
      s.onload = () => resolve(window.echarts);
      s.onerror = () => reject(new Error('chart library did not load'));
      document.head.append(s);
    });
  }
  return echartsLoading;
}
async function chart(container, option) {
  const echarts = await charts();
  const c = echarts.init(container, null, { renderer: 'svg' });
  c.setOption({ animation: false, textStyle: { fontFamily: 'system-ui, "Noto Sans CJK JP", sans-serif' }, ...option });
  return c;
}
function chartBox(id, label) { return h('div', { class: 'chart', id, role: 'img', 'aria-label': label }); }

// ---------- pipeline board ----------

async function boardPage(main) {
  const owner = app.boardOwner || '';
  const answer = await get('/v1/pipeline/board' + query({ limit: 50, owner, ...travelParams() }));
  const board = answer.data;
  for (const s of board.stages) for (const c of s.cards) app.owners.add(c.owner);
  const stages = board.stages.map(s => s.stage);
  const ownerSelect = h('select', { id: 'owner-filter', onchange: () => { app.boardOwner = ownerSelect.value; route(); } },
    options([...app.owners].sort(), owner, t('allOwners')));
  const writable = can('write') && !travelling();
  const columns = board.stages.map((s, i) => {
    const col = h('section', { class: 'column', 'data-stage': s.stage, 'aria-labelledby': 'col-' + s.stage },
      h('h2', { id: 'col-' + s.stage }, `${word(s.stage)} (${s.probability}%)`),
      h('ul', { class: 'totals' },
        h('li', { 'data-count': s.count }, `${t('count')}: ${num(s.count)}`),
        s.totals.map(tot => h('li', { 'data-currency': tot.currency, 'data-amount': tot.amount, 'data-weighted': tot.weighted_amount },
          `${t('total')} ${money(tot.amount, tot.currency)} · ${t('weighted')} ${money(tot.weighted_amount, tot.currency)}`))),
      s.cards.map(c => card(c, s.stage, stages, i, writable)));
    if (writable) {
      col.addEventListener('dragover', (e) => { e.preventDefault(); col.classList.add('over'); });
      col.addEventListener('dragleave', () => col.classList.remove('over'));
      col.addEventListener('drop', (e) => {
        e.preventDefault(); col.classList.remove('over');
        const id = e.dataTransfer.getData('text/plain');
        const el = document.querySelector(`.card[data-deal="${CSS.escape(id)}"]`);
        if (el && el.dataset.stage !== s.stage) moveCard(el, s.stage);
      });
    }
    return col;
  });
  main.replaceChildren(
    h('h1', {}, t('board')),
    travelBar(answer.freshness, rerenderPage),
    h('div', { class: 'filters' }, field(t('owner'), ownerSelect)),
    writable ? h('p', { class: 'muted', id: 'move-help' }, t('moveHelp')) : null,
    h('div', { class: 'board', id: 'board', 'data-as-of': board.as_of }, columns));
}

function card(c, stage, stages, index, writable) {
  const el = h('article', { class: 'card', tabindex: 0, draggable: writable ? 'true' : null, 'data-deal': c.deal_id, 'data-stage': stage, 'data-version': c.version,
    'aria-describedby': writable ? 'move-help' : null, 'aria-label': `${c.title}, ${c.contact_name}` },
    h('h3', {}, c.title),
    h('p', {}, h('a', { href: '#/contacts/' + c.contact_id }, c.contact_name), ' · ', c.owner),
    h('p', { 'data-amount': c.amount.amount }, money(c.amount.amount, c.amount.currency), ' · ', `${num(c.days_in_stage, 2)} ${t('days')}`));
  if (writable) {
    el.addEventListener('dragstart', (e) => { e.dataTransfer.setData('text/plain', c.deal_id); e.dataTransfer.effectAllowed = 'move'; });
    el.addEventListener('keydown', (e) => {
      if (!e.shiftKey || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
      e.preventDefault();
      const to = stages[index + (e.key === 'ArrowRight' ? 1 : -1)];
      if (to) moveCard(el, to);
    });
  }
  return el;
}

// moveCard sends the stage command with If-Match set to the version the card was drawn with
// (the board answer's): when someone else changed the deal since, the API answers 412 and the
// fresh deal is shown on the card, "changed by someone else". A card drawn from a read model
// that had not yet read the deal's latest event is refused the same way.
async function moveCard(el, to) {
  const id = el.dataset.deal;
  const title = el.querySelector('h3').textContent;
  try {
    const res = await api('/v1/deals/' + encodeURIComponent(id) + '/stage', { method: 'POST', body: { stage: to }, headers: { 'If-Match': `"${el.dataset.version}"` } });
    const target = document.querySelector(`.column[data-stage="${CSS.escape(to)}"]`);
    el.dataset.stage = to;
    if (res.data && typeof res.data.version === 'number') el.dataset.version = res.data.version;
    target.append(el);
    el.focus();
    say(t('moved', { title, stage: word(to) }), 'ok');
  } catch (ex) {
    if (ex instanceof APIError && ex.status === 412) {
      const again = await api('/v1/deals/' + encodeURIComponent(id));
      return showConflict(el, again.data);
    }
    if (!(ex instanceof APIError && ex.status === 401)) say(t('moveFailed', { detail: ex.message }), 'error');
  }
}
const isOpen = (deal) => !deal.closed_at && deal.stage !== 'won' && deal.stage !== 'lost';
function showConflict(el, deal) {
  el.classList.add('conflict');
  el.dataset.stage = deal.stage;
  el.dataset.version = deal.version;
  const target = document.querySelector(`.column[data-stage="${CSS.escape(deal.stage)}"]`);
  if (target && isOpen(deal)) target.append(el);
  el.querySelector('h3').textContent = deal.title;
  say(t('conflict', { title: deal.title, stage: word(deal.stage) }), 'error');
}

// ---------- contacts ----------

const phases = ['lead', 'approach', 'discovery', 'proposal', 'won', 'follow_up', 'loyal', 'lost', 'churned'];
const channels = ['web_form', 'seminar', 'exhibition', 'direct_mail', 'social_ad', 'referral', 'other'];

async function contactsPage(main, rest) {
  if (rest.length && rest[0]) return contactPage(main, rest[0]);
  const f = app.contactFilters || (app.contactFilters = { q: '', phase: '', owner: '', segment: '', channel: '', cursors: [] });
  const results = h('div', { id: 'contact-results' });
  const q = h('input', { type: 'search', id: 'contact-q', value: f.q, autocomplete: 'off' });
  const phase = h('select', { id: 'contact-phase' }, options(phases, f.phase, t('any')));
  const owner = h('input', { type: 'text', id: 'contact-owner', value: f.owner });
  const segment = h('input', { type: 'text', id: 'contact-segment', value: f.segment });
  const channel = h('select', { id: 'contact-channel' }, options(channels, f.channel, t('any')));
  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    Object.assign(f, { q: q.value, phase: phase.value, owner: owner.value.trim(), segment: segment.value.trim(), channel: channel.value });
    const cursor = f.cursors[f.cursors.length - 1] || '';
    const answer = await get('/v1/contacts' + query({ q: f.q.trim(), phase: f.phase, owner: f.owner, segment: f.segment, channel: f.channel, limit: 25, cursor, ...fresh() }));
    if (mine !== seq) return; // a later keystroke's answer wins
    const d = answer.data;
    results.replaceChildren(
      h('p', { id: 'contact-total', 'data-total': d.total }, t('results', { n: num(d.total) })),
      table([[t('name')], [t('company')], [t('phase')], [t('owner')], [t('openDeals'), 'num'], [t('lastActivity')]],
        d.contacts.map(c => h('tr', { 'data-contact': c.contact_id },
          h('td', {}, h('a', { href: '#/contacts/' + c.contact_id }, c.name)), h('td', {}, c.company || ''), h('td', {}, word(c.phase)),
          h('td', {}, c.owner || ''), h('td', { class: 'num' }, num(c.open_deals)), h('td', {}, date(c.last_activity)))), { name: 'contacts', caption: t('contacts') }),
      h('div', { class: 'filters' },
        h('button', { type: 'button', class: 'plain', id: 'contacts-prev', disabled: f.cursors.length === 0, onclick: () => { f.cursors.pop(); load(); } }, t('prev')),
        h('button', { type: 'button', class: 'plain', id: 'contacts-next', disabled: !d.next_cursor, onclick: () => { f.cursors.push(d.next_cursor); load(); } }, t('next'))));
    results.dataset.query = f.q;
  };
  let timer = null;
  const changed = () => { f.cursors = []; clearTimeout(timer); timer = setTimeout(() => load().catch(showLoadError), 150); };
  // input fires after an IME composition ends too, so Japanese text is searched once it is committed.
  q.addEventListener('input', (e) => { if (!e.isComposing) changed(); });
  q.addEventListener('compositionend', changed);
  for (const el of [phase, owner, segment, channel]) el.addEventListener('change', changed);
  main.replaceChildren(h('h1', {}, t('contacts')),
    h('div', { class: 'filters', role: 'search' }, field(t('search'), q), field(t('phase'), phase), field(t('owner'), owner),
      field(t('segment'), segment), field(t('channel'), channel)),
    results);
  await load();
}
function showLoadError(ex) { if (!(ex instanceof APIError && ex.status === 401)) say(t('loadFailed', { detail: ex.message }), 'error'); }

async function contactPage(main, id) {
  const enc = encodeURIComponent(id);
  const tp = travelParams();
  const asOf = tp.as_of ? { as_of: tp.as_of } : {};
  const [rec, timeline, journey, deals, tasks, value, score] = await Promise.all([
    get(`/v1/contacts/${enc}` + query(asOf)), get(`/v1/contacts/${enc}/timeline` + query({ limit: 30, ...tp, as_of: undefined })),
    get(`/v1/journeys/${enc}` + query(tp)), get('/v1/deals' + query({ contact_id: id, limit: 50, ...tp, as_of: undefined })),
    get('/v1/tasks' + query({ contact_id: id, limit: 50, ...tp })),
    get(`/v1/contacts/${enc}/value` + query(tp)), get(`/v1/contacts/${enc}/score` + query(tp)),
  ]);
  const c = rec;
  const writable = can('write') && !travelling();
  const customer = value.data.customer;
  main.replaceChildren(
    h('h1', { id: 'contact-name' }, c.name || id),
    travelBar(timeline.freshness, rerenderPage),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, t('contact')),
        h('p', {}, [c.email, c.phone, c.company].filter(Boolean).join(' · ')),
        h('p', {}, `${t('phase')}: `, h('strong', { id: 'contact-phase-now', 'data-value': c.phase }, word(c.phase)), ` · ${t('owner')}: ${c.owner || '—'}`),
        h('p', { id: 'contact-score', 'data-score': score.data.score }, `${t('score')}: ${num(score.data.score, 1)}`),
        h('p', { id: 'contact-value', 'data-value': customer ? moneyListValue(customer.currencies, 'ltv') : '' }, `${t('value')}: `, customer ? customer.currencies.map(x => `${money(x.revenue, x.currency)} (${t('ltv')} ${money(x.ltv, x.currency)})`).join(', ') + ` · RFM ${customer.r}${customer.f}${customer.m}` : t('none'))),
      h('section', { class: 'panel' }, h('h2', {}, t('journey')),
        h('ol', { id: 'contact-journey' }, journey.data.visits.map(v => h('li', { 'data-key': v.seq, 'data-phase': v.phase },
          `${word(v.phase)} — `, h('time', { datetime: v.entered_at, 'data-value': v.entered_at }, date(v.entered_at)),
          v.days !== null && v.days !== undefined ? ` (${num(v.days, 1)} d)` : ''))))),
    h('h2', {}, t('deals')),
    table([[t('title')], [t('stage')], [t('status')], [t('amount'), 'num']], deals.data.deals.map(d => h('tr', { 'data-key': d.deal_id },
      h('td', {}, d.title), fig('stage', d.stage, word(d.stage), ''), h('td', {}, word(d.status)), fig('amount', moneyListValue([d.amount]), money(d.amount.amount, d.amount.currency)))), { name: 'deals', caption: t('deals') }),
    h('h2', {}, t('tasks')),
    table([[t('title')], [t('due')], [t('assignee')], [t('status')]], tasks.data.tasks.map(x => h('tr', { 'data-key': x.task_id },
      h('td', {}, x.title), h('td', {}, date(x.due)), h('td', {}, x.assignee || ''), h('td', { class: x.overdue ? 'error' : '' }, x.overdue ? t('overdue') : word(x.status)))), { name: 'tasks', caption: t('tasks') }),
    writable ? contactForms(id) : null,
    h('h2', {}, t('timeline')),
    h('ol', { class: 'timeline', id: 'timeline', 'data-entries': timeline.data.entries.length }, timeline.data.entries.map(e => h('li', { 'data-position': e.position, 'data-event': e.event },
      `${dateTime(e.occurred_at)} — ${e.event}${summary(e) ? ' · ' + summary(e) : ''}${e.actor ? ' (' + e.actor + ')' : ''}`))));
}
// summary is what a timeline entry says in a few words: the deal's or task's title, a
// touchpoint's kind and note, a phase change with its reason, a note's text.
function summary(e) {
  const d = e.data || {};
  if (e.type === 'phase') return `${word(d.from)} → ${word(d.to)}${d.reason ? ': ' + d.reason : ''}`;
  if (e.type === 'touchpoint') return [word(d.kind), d.note].filter(Boolean).join(': ');
  if (e.type === 'task' && e.task) return [e.title, e.task.due ? `${t('due')} ${date(e.task.due)}` : ''].filter(Boolean).join(', ');
  return e.title || d.text || '';
}

function contactForms(id) {
  const enc = encodeURIComponent(id);
  const send = (path, body) => api(`/v1/contacts/${enc}/${path}`, { method: 'POST', body });
  const submit = (build) => async (e) => {
    e.preventDefault();
    try { await build(e.target); await route(); say(t('saved'), 'ok'); } catch (ex) { showLoadError(ex); if (ex instanceof APIError && ex.status !== 401) say(ex.message, 'error'); }
  };
  const kind = h('select', { name: 'kind' }, options(['call', 'email_open', 'inquiry', 'meeting', 'seminar', 'webinar', 'visit'], 'call'));
  const note = h('input', { name: 'note' });
  const phase = h('select', { name: 'phase' }, options(phases, ''));
  const reason = h('input', { name: 'reason', required: true });
  const title = h('input', { name: 'title', required: true });
  const due = h('input', { name: 'due', type: 'date', required: true });
  const assignee = h('input', { name: 'assignee', value: app.me.name });
  return h('div', { class: 'grid2' },
    h('form', { class: 'panel', id: 'form-touchpoint', onsubmit: submit(() => send('touchpoints', { kind: kind.value, note: note.value })) },
      h('h2', {}, t('logTouchpoint')), field(t('kind'), kind), field(t('note'), note), h('button', { type: 'submit' }, t('save'))),
    h('form', { class: 'panel', id: 'form-phase', onsubmit: submit(() => send('phase', { phase: phase.value, reason: reason.value })) },
      h('h2', {}, t('movePhase')), field(t('phase'), phase), field(t('reason'), reason), h('button', { type: 'submit' }, t('save'))),
    h('form', { class: 'panel', id: 'form-task', onsubmit: submit(() => send('tasks', { title: title.value, due: due.value, assignee: assignee.value })) },
      h('h2', {}, t('scheduleTask')), field(t('title'), title), field(t('due'), due), field(t('assignee'), assignee), h('button', { type: 'submit' }, t('save'))));
}

// ---------- journey map ----------

async function journeyPage(main) {
  const f = app.journeyFilters || (app.journeyFilters = { cohort: '', channel: '' });
  const answer = await get('/v1/analytics/journey-map' + query({ cohort: f.cohort, channel: f.channel, ...travelParams() }));
  const steps = answer.data.by_phase.steps;
  const transitions = answer.data.by_phase.transitions;
  const pick = () => { f.cohort = cohort.value; f.channel = channel.value; route(); };
  const cohort = h('input', { type: 'month', id: 'journey-cohort', value: f.cohort, onchange: pick });
  const channel = h('select', { id: 'journey-channel', onchange: pick }, options(channels, f.channel, t('any')));
  const funnelBox = chartBox('journey-funnel', t('funnel'));
  const sankeyBox = chartBox('journey-sankey', t('flows'));
  const { forward, back } = acyclic(transitions);
  const isBack = new Set(back);
  main.replaceChildren(h('h1', {}, t('journey')), travelBar(answer.freshness, rerenderPage),
    h('div', { class: 'filters', id: 'journey-pickers', 'data-cohort': f.cohort, 'data-channel': f.channel }, field(t('cohort'), cohort), field(t('channel'), channel)),
    h('div', { class: 'grid2' }, h('section', {}, h('h2', {}, t('funnel')), funnelBox), h('section', {}, h('h2', {}, t('flows')), sankeyBox)),
    table([[t('phase')], [t('entered'), 'num'], [t('advanced'), 'num'], [t('conversion'), 'num'], [t('medianDays'), 'num']],
      steps.map(s => h('tr', { 'data-key': s.name }, h('td', {}, word(s.name)), fig('entered', s.entered, num(s.entered)),
        fig('advanced', s.advanced, num(s.advanced)), fig('conversion', s.conversion, pct(s.conversion)), fig('median_days', s.median_days, num(s.median_days, 1)))), { name: 'journey', caption: t('funnel') }),
    h('h2', {}, t('flows')),
    table([[t('from')], [t('to')], [t('contacts'), 'num'], ['']], transitions.map(x => h('tr', { 'data-key': `${x.from}>${x.to}` },
      h('td', {}, word(x.from)), h('td', {}, word(x.to)), fig('count', x.count, num(x.count)), h('td', { class: 'muted' }, isBack.has(x) ? t('back') : ''))), { name: 'transitions', caption: t('flows') }));
  await chart(funnelBox, { tooltip: {}, series: [{ type: 'funnel', sort: 'none', left: '10%', width: '80%', label: { formatter: '{b}: {c}' },
    data: steps.map(s => ({ name: word(s.name), value: s.entered })) }] });
  const names = [...new Set(forward.flatMap(x => [x.from, x.to]))];
  await chart(sankeyBox, { tooltip: {}, series: [{ type: 'sankey', emphasis: { focus: 'adjacency' }, nodeAlign: 'left',
    data: names.map(n => ({ name: word(n) })), links: forward.map(x => ({ source: word(x.from), target: word(x.to), value: x.count })) }] });
}
// acyclic keeps the transitions a Sankey can draw (it needs a graph without cycles), in order,
// and returns the others apart: contacts moving back, shown in a table.
function acyclic(transitions) {
  const edges = new Map();
  const reaches = (a, b, seen = new Set()) => a === b || (!seen.has(a) && (seen.add(a), [...(edges.get(a) || [])].some(n => reaches(n, b, seen))));
  const forward = [], back = [];
  for (const x of [...transitions].sort((a, b) => b.count - a.count)) {
    if (x.from === x.to || reaches(x.to, x.from)) { back.push(x); continue; }
    if (!edges.has(x.from)) edges.set(x.from, new Set());
    edges.get(x.from).add(x.to);
    forward.push(x);
  }
  return { forward, back };
}

// ---------- churn points ----------

async function churnPage(main) {
  const answer = await get('/v1/analytics/churn-points' + query({ limit: 50, ...travelParams() }));
  const d = answer.data;
  const box = chartBox('churn-chart', t('dropOff'));
  main.replaceChildren(h('h1', {}, t('churn')), travelBar(answer.freshness, rerenderPage), box,
    table([[t('rank'), 'num'], [t('phase')], [t('entered'), 'num'], [t('lost'), 'num'], [t('churned'), 'num'], [t('dormant'), 'num'], [t('dropOff'), 'num']],
      d.phases.map(p => h('tr', { 'data-key': p.phase }, fig('rank', p.rank, num(p.rank)), h('td', {}, word(p.phase)), fig('entered', p.entered, num(p.entered)),
        fig('lost', p.lost, num(p.lost)), fig('churned', p.churned, num(p.churned)), fig('dormant', p.dormant, num(p.dormant)),
        fig('drop_off_rate', p.drop_off_rate, pct(p.drop_off_rate)))), { name: 'churn', caption: t('churn') }),
    h('h2', {}, t('lostReasons')),
    table([[t('stage')], [t('reason')], [t('count'), 'num'], [t('amount'), 'num']],
      d.lost_deals.map(x => h('tr', { 'data-key': `${x.stage}/${x.reason}` }, h('td', {}, word(x.stage)), h('td', {}, x.reason), fig('count', x.count, num(x.count)),
        fig('amounts', moneyListValue(x.amounts), moneyListText(x.amounts)))), { name: 'lost', caption: t('lostReasons') }));
  await chart(box, { tooltip: {}, grid: { left: 100, right: 20 }, xAxis: { type: 'value', max: 1 }, yAxis: { type: 'category', inverse: true, data: d.phases.map(p => word(p.phase)) },
    series: [{ type: 'bar', data: d.phases.map(p => p.drop_off_rate), label: { show: true, position: 'right', formatter: (p) => pct(p.value) } }] });
}

// ---------- KPIs and forecast ----------

async function kpisPage(main) {
  const period = app.kpiPeriod || 'month';
  const year = +date(new Date().toISOString()).match(/\d{4}/)[0]; // this year in the business zone
  const [kpis, forecast] = await Promise.all([
    get('/v1/analytics/kpis' + query({ period, from: `${year - 3}-01-01`, limit: 100 })),
    get('/v1/analytics/forecast' + query({ limit: 100 }))]);
  const ps = kpis.data.periods.filter(p => p.new_leads.total || p.deals.opened || p.deals.won || p.deals.lost);
  const currencies = [...new Set(ps.flatMap(p => Object.keys(p.revenue_won)))].sort();
  const sel = h('select', { id: 'kpi-period', onchange: () => { app.kpiPeriod = sel.value; route(); } }, ['month', 'quarter', 'year'].map(v => h('option', { value: v, selected: v === period }, t(v))));
  const box = chartBox('kpi-chart', t('revenue'));
  const f = forecast.data;
  const fcRows = [...f.months.map(m => [m.month, m.month, m.total]), ['overdue', t('overdue'), f.overdue.total]];
  const moneyOf = (tot, key) => byCurrency(tot, key);
  main.replaceChildren(h('h1', {}, t('kpis')), h('div', { class: 'filters' }, field(t('period'), sel)), box,
    table([[t('period')], [t('newLeads'), 'num'], [t('opened'), 'num'], [t('won'), 'num'], [t('lost'), 'num'], [t('winRate'), 'num'], [t('revenue'), 'num']],
      ps.map(p => { const rev = byCurrency(p.revenue_won); return h('tr', { 'data-key': p.period }, h('td', {}, p.period), fig('new_leads', p.new_leads.total, num(p.new_leads.total)),
        fig('opened', p.deals.opened, num(p.deals.opened)), fig('won', p.deals.won, num(p.deals.won)), fig('lost', p.deals.lost, num(p.deals.lost)),
        fig('win_rate', p.deals.win_rate, pct(p.deals.win_rate)), fig('revenue_won', moneyListValue(rev), moneyListText(rev))); }),
      { name: 'kpis', caption: t('kpis') }),
    h('h2', {}, t('forecast')),
    table([[t('month')], [t('count'), 'num'], [t('total'), 'num'], [t('weighted'), 'num']],
      fcRows.map(([key, label, tot]) => { const count = Object.values(tot).reduce((n, x) => n + x.count, 0);
        return h('tr', { 'data-key': key }, h('td', {}, label), fig('count', count, num(count)),
          fig('amount', moneyListValue(moneyOf(tot, 'amount')), moneyListText(moneyOf(tot, 'amount'))),
          fig('weighted', moneyListValue(moneyOf(tot, 'weighted')), moneyListText(moneyOf(tot, 'weighted')))); }), { name: 'forecast', caption: t('forecast') }));
  await chart(box, { tooltip: { trigger: 'axis' }, legend: {}, grid: { left: 90, right: 30 }, xAxis: { type: 'category', data: ps.map(p => p.period) },
    yAxis: currencies.map((c, i) => ({ type: 'value', name: c, position: i ? 'right' : 'left' })),
    series: currencies.map((c, i) => ({ type: i ? 'line' : 'bar', name: c, yAxisIndex: i, data: ps.map(p => (p.revenue_won[c] || 0)) })) });
}

// ---------- customer value ----------

async function valuePage(main) {
  const [customers, rfm] = await Promise.all([get('/v1/analytics/customers' + query({ limit: 25 })), get('/v1/analytics/rfm')]);
  const grid = new Map(rfm.data.grid.map(g => [`${g.r}/${g.f}`, g.customers]));
  const box = chartBox('rfm-chart', t('segments'));
  const cell = (r, f) => { const n = grid.get(`${r}/${f}`) ?? 0; return h('td', { 'data-cell': `${r}/${f}`, 'data-value': n }, num(n)); };
  main.replaceChildren(h('h1', {}, t('value')),
    h('div', { class: 'grid2' },
      h('section', {}, h('h2', {}, t('rfm')),
        h('table', { class: 'rfm', id: 'rfm-grid', 'data-customers': rfm.data.customers }, h('caption', { class: 'sr' }, t('rfm')),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, `${t('recency')} \\ ${t('frequency')}`), [1, 2, 3, 4, 5].map(f => h('th', { scope: 'col' }, 'F' + f)))),
          h('tbody', {}, [5, 4, 3, 2, 1].map(r => h('tr', {}, h('th', { scope: 'row' }, 'R' + r), [1, 2, 3, 4, 5].map(f => cell(r, f))))))),
      h('section', {}, h('h2', {}, t('segments')), box,
        table([[t('segment')], [t('customers'), 'num'], [t('revenue'), 'num']], rfm.data.segments.map(s => h('tr', { 'data-key': s.segment },
          h('td', {}, word(s.segment)), fig('customers', s.customers, num(s.customers)), fig('revenue', moneyListValue(s.revenue), moneyListText(s.revenue)))),
          { name: 'segments', caption: t('segments') }))),
    h('h2', {}, t('customers')),
    table([[t('name')], [t('orders'), 'num'], [t('ltv'), 'num'], ['RFM']], customers.data.list.map(c => h('tr', { 'data-key': c.contact_id },
      h('td', {}, h('a', { href: '#/contacts/' + c.contact_id }, c.name)), fig('orders', c.orders, num(c.orders)),
      fig('ltv', moneyListValue(c.currencies, 'ltv'), moneyListText(c.currencies, 'ltv')), fig('rfm', `${c.r}${c.f}${c.m} ${c.segment}`, `${c.r}${c.f}${c.m} ${c.segment}`, ''))), { name: 'customers', caption: t('customers') }));
  await chart(box, { tooltip: {}, grid: { left: 120 }, xAxis: { type: 'value' }, yAxis: { type: 'category', data: rfm.data.segments.map(s => s.segment) },
    series: [{ type: 'bar', data: rfm.data.segments.map(s => s.customers) }] });
}

// ---------- tasks ----------

async function tasksPage(main) {
  const answer = await get('/v1/tasks' + query({ status: 'open', limit: 100, ...fresh() }));
  const d = answer.data;
  main.replaceChildren(h('h1', {}, t('dueOverdue')), h('p', { class: 'muted' }, `${t('due')}: ${date(d.business_date)}`),
    table([[t('assignee')], [t('open'), 'num'], [t('overdue'), 'num'], [t('done'), 'num']], d.counts.map(c => h('tr', { 'data-key': c.assignee },
      h('td', {}, c.assignee), fig('open', c.open, num(c.open)), fig('overdue', c.overdue, num(c.overdue)), fig('done', c.done, num(c.done)))), { name: 'task-counts', caption: t('tasks') }),
    table([[t('due')], [t('title')], [t('contact')], [t('assignee')], [t('status')]], d.tasks.map(x => h('tr', { 'data-task': x.task_id, 'data-key': x.task_id },
      fig('due', x.due, date(x.due), ''), h('td', {}, x.title), h('td', {}, h('a', { href: '#/contacts/' + x.contact_id }, t('contact'))),
      h('td', {}, x.assignee || ''), h('td', { class: x.overdue ? 'error' : '' }, x.overdue ? t('overdue') : word(x.status)))), { name: 'tasks', caption: t('tasks') }));
}

// ---------- operations ----------

async function opsPage(main) {
  const [list, parked] = await Promise.all([get('/v1/projections'), get('/v1/projections/parked')]);
  const progress = h('div', { id: 'rebuild-progress', 'aria-live': 'polite' });
  main.replaceChildren(h('h1', {}, t('ops')),
    h('h2', {}, t('projections')),
    table([[t('name')], [t('state')], [t('checkpoint'), 'num'], [t('head'), 'num'], [t('lag'), 'num'], [t('parked'), 'num'], ['']],
      list.projections.map(p => h('tr', { 'data-projection': p.name }, h('td', {}, p.name), h('td', {}, word(p.state)), h('td', { class: 'num' }, num(p.checkpoint)),
        h('td', { class: 'num' }, num(p.head)), h('td', { class: 'num' }, num(p.lag.events)), h('td', { class: 'num' }, num(p.parked)),
        h('td', {}, can('rebuild') ? h('button', { type: 'button', class: 'plain', 'data-rebuild': p.name, onclick: () => rebuild(p.name, progress) }, `${t('rebuild')} ${p.name}`) : ''))), { name: 'projections', caption: t('projections') }),
    progress,
    h('h2', {}, t('parked')),
    parked.parked.length === 0 ? h('p', {}, t('noParked')) :
      table([[t('name')], [t('event')], [t('error')], ['']], parked.parked.map(p => h('tr', { 'data-parked': p.id }, h('td', {}, p.projection), h('td', {}, `${p.event_type || ''} @${p.position}`),
        h('td', {}, p.error || ''), h('td', {}, can('rebuild') ? h('button', { type: 'button', 'data-retry': p.id, onclick: () => retryParked(p) }, `${t('retry')} ${p.projection} @${p.position}`) : ''))), { name: 'parked', caption: t('parked') }));
}

// retryParked applies a parked event again (and those parked behind it) and draws the list
// again; one that fails again stays, with its new error.
async function retryParked(p) {
  try {
    const res = await api(`/v1/projections/parked/${p.id}/retry`, { method: 'POST' });
    await route();
    if (res.data && res.data.failed) say(t('retryFailed', { detail: res.data.failed.error || '' }), 'error');
    else say(t('retried'), 'ok');
  } catch (ex) { showLoadError(ex); }
}

async function rebuild(name, box) {
  const bar = h('progress', { max: 1, value: 0, id: 'rebuild-bar', 'aria-label': t('rebuilding', { name }) });
  const label = h('span', {});
  box.replaceChildren(h('p', {}, t('rebuilding', { name }), ' ', bar, ' ', label));
  try {
    await api(`/v1/projections/${encodeURIComponent(name)}/rebuild`, { method: 'POST' });
    for (;;) {
      const p = await get(`/v1/projections/${encodeURIComponent(name)}/rebuild`);
      const total = p.total || 0, done = p.events || 0;
      bar.max = Math.max(total, 1); bar.value = done;
      label.textContent = `${num(done)} / ${num(total)} ${p.state || ''}`;
      box.dataset.state = p.state || '';
      if (p.state === 'done' || p.state === 'failed') break;
      await new Promise(r => setTimeout(r, 250));
    }
  } catch (ex) { showLoadError(ex); if (ex instanceof APIError && ex.status !== 401) label.textContent = ex.message; }
}

// ---------- audit ----------

const hex = (b) => [...new Uint8Array(b)].map(x => x.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array(s.match(/../g).map(x => parseInt(x, 16)));
const unb64 = (s) => Uint8Array.from(atob(s), c => c.charCodeAt(0));
async function sha256(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { buf.set(p, o); o += p.length; }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}
// signedText is what a checkpoint's Ed25519 signature covers (eventstore/audit Checkpoint.SignedText).
function signedText(cp) {
  return new TextEncoder().encode(`eventcrm audit checkpoint v1\nsize ${cp.size}\nlast_position ${cp.last_position}\nroot_hash ${cp.root_hash}\ntimestamp ${cp.timestamp}\nkey_id ${cp.key_id}\n`);
}
async function verifyCheckpoint(cp, pinnedB64) {
  const key = await crypto.subtle.importKey('raw', unb64(pinnedB64), { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, unb64(cp.signature), signedText(cp));
}
// leafHash rebuilds the event's Merkle leaf (eventstore/audit AppendLeaf) and hashes it as RFC 6962 does.
async function leafHash(p) {
  const stream = new TextEncoder().encode(p.stream);
  const leaf = new Uint8Array(1 + 8 + 8 + 8 + stream.length + 32);
  const view = new DataView(leaf.buffer);
  leaf[0] = 1;
  view.setBigUint64(1, BigInt(p.position));
  view.setBigUint64(9, BigInt(p.version));
  view.setBigUint64(17, BigInt(stream.length));
  leaf.set(stream, 25);
  leaf.set(unhex(p.chain_hash), 25 + stream.length);
  return sha256(new Uint8Array([0]), leaf);
}
// rootFromPath is RFC 9162 2.1.3.2: the root an audit path leads to from a leaf.
async function rootFromPath(leaf, index, size, path) {
  let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
  for (const p of path.map(unhex)) {
    if (sn === 0n) throw new Error('audit path longer than the tree is deep');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(new Uint8Array([1]), p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(new Uint8Array([1]), r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('audit path shorter than the tree is deep');
  return hex(r);
}
async function verifyProof(p, pinned) {
  if (!(await verifyCheckpoint(p.checkpoint, pinned))) throw new Error(t('sigBad'));
  if (p.tree_size !== p.checkpoint.size) throw new Error('tree size differs from the checkpoint');
  const leaf = await leafHash(p);
  if (hex(leaf) !== p.leaf_hash) throw new Error('the leaf hash is not the hash of the event');
  const root = await rootFromPath(leaf, p.leaf_index, p.tree_size, p.audit_path);
  if (root !== p.checkpoint.root_hash) throw new Error(`the path leads to ${root}, not the signed root`);
  return root;
}

async function auditPage(main, rest) {
  const cp = await get('/v1/audit/checkpoint');
  const pinned = h('input', { id: 'audit-pinned', value: localStorage.getItem(PIN_KEY) || '', size: 50, spellcheck: 'false' });
  const cpResult = h('p', { id: 'checkpoint-result', role: 'status' });
  const stream = h('input', { id: 'proof-stream', value: rest[0] || '', size: 50 });
  const version = h('input', { id: 'proof-version', type: 'number', min: 1, value: rest[1] || '1' });
  const proofResult = h('p', { id: 'proof-result', role: 'status' });
  const key = () => { const k = localStorage.getItem(PIN_KEY); if (!k) throw new Error(t('noKey')); return k; };
  const verdict = (el, ok, text) => { el.className = ok ? 'ok' : 'error'; el.dataset.verified = String(ok); el.textContent = text; };
  main.replaceChildren(h('h1', {}, t('audit')),
    h('section', { class: 'panel' }, h('h2', {}, t('signedCheckpoint')),
      table([[t('size'), 'num'], [t('position'), 'num'], [t('root')], [t('time')], [t('keyId')]], [h('tr', { id: 'checkpoint' },
        h('td', { class: 'num' }, num(cp.size)), h('td', { class: 'num' }, num(cp.last_position)), h('td', {}, h('code', {}, cp.root_hash)), h('td', {}, dateTime(cp.timestamp.replace(/(\.\d{3})\d*Z$/, '$1Z'))), h('td', {}, cp.key_id))], { caption: t('signedCheckpoint') }),
      h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); localStorage.setItem(PIN_KEY, pinned.value.trim()); say(t('saved'), 'ok'); } },
        field(t('pinnedKey'), pinned), h('button', { type: 'submit', id: 'audit-pin' }, t('pin'))),
      h('button', { type: 'button', id: 'verify-checkpoint', onclick: async () => {
        try { verdict(cpResult, await verifyCheckpoint(cp, key()), ''); cpResult.textContent = cpResult.dataset.verified === 'true' ? t('sigOk') : t('sigBad'); } catch (ex) { verdict(cpResult, false, ex.message); }
      } }, t('verifyCheckpoint')), cpResult),
    h('section', { class: 'panel' }, h('h2', {}, t('proveEvent')),
      h('form', { class: 'inline', id: 'proof-form', onsubmit: async (e) => {
        e.preventDefault();
        try {
          const p = await get('/v1/audit/proof' + query({ stream: stream.value.trim(), version: version.value }));
          const root = await verifyProof(p, key());
          verdict(proofResult, true, t('proofOk', { stream: p.stream, version: p.version, root: root.slice(0, 16) + '…' }));
        } catch (ex) { if (!(ex instanceof APIError && ex.status === 401)) verdict(proofResult, false, t('proofBad', { why: ex.message })); }
      } }, field(t('stream'), stream), field(t('version'), version), h('button', { type: 'submit' }, t('verify'))), proofResult));
}

// ---------- start ----------

function setLang(lang) {
  app.lang = lang === 'ja' ? 'ja' : 'en';
  document.documentElement.lang = app.lang;
  $('#lang').value = app.lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  if (app.me) { buildNav(); route(); }
}

function boot() {
  const stored = localStorage.getItem(LANG_KEY);
  setLang(stored || ((navigator.language || 'en').toLowerCase().startsWith('ja') ? 'ja' : 'en'));
  $('#lang').addEventListener('change', (e) => { localStorage.setItem(LANG_KEY, e.target.value); setLang(e.target.value); });
  $('#signout').addEventListener('click', () => signOut(''));
  window.addEventListener('hashchange', route);
  if (!sessionStorage.getItem(TOKEN_KEY)) return showSignIn('');
  start().catch((ex) => { if (!(ex instanceof APIError && ex.status === 401)) showSignIn(t('loadFailed', { detail: ex.message })); });
}

boot();
