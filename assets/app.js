// snip dashboard behaviours: one plain ES module, no build step, no dependencies.
// Every behaviour is progressive: the pages work without it. The link detail page
// loads uPlot (window.uPlot) as a deferred classic script before this module.

const REFRESH_MS = 5000;
const HINT_DELAY_MS = 250;
const COPIED_MS = 2000;

// Copy buttons: <button class="copy" data-copy="#input-id"> copies that input's value.
// Delegated, so buttons inside refreshed content keep working.
const copiedTimers = new WeakMap();
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button.copy[data-copy]');
  if (!button) return;
  const target = document.querySelector(button.dataset.copy);
  if (!target) return;
  const text = 'value' in target ? target.value : target.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No async clipboard (plain http, old browser, denied): select and copy.
    // If that fails too, the value stays selected for the user to copy.
    target.select?.();
    if (!document.execCommand('copy')) return;
  }
  button.dataset.label ??= button.textContent;
  button.textContent = 'Copied';
  clearTimeout(copiedTimers.get(button));
  copiedTimers.set(button, setTimeout(() => { button.textContent = button.dataset.label; }, COPIED_MS));
});

// Confirmations: <button data-confirm="Question?"> inside a form asks before submitting.
// A click listener also covers Enter in a field, which clicks the default button.
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-confirm]');
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

// Custom-code hint: while typing in input[name=code], ask the server (debounced)
// whether the code is free and say so in #code-hint. An empty field, or no answer,
// brings back the hint the server wrote (the rules for codes).
const codeInput = document.querySelector('input[name="code"]');
const codeHint = document.getElementById('code-hint');
if (codeInput && codeHint) {
  const rules = [...codeHint.childNodes];
  let timer = 0;
  let pending = null;
  const show = (text, state) => {
    if (text) codeHint.textContent = text;
    else codeHint.replaceChildren(...rules);
    codeHint.dataset.state = state;
  };
  codeInput.addEventListener('input', () => {
    clearTimeout(timer);
    pending?.abort();
    const code = codeInput.value.trim();
    if (!code) return show('', '');
    timer = setTimeout(async () => {
      pending = new AbortController();
      try {
        const response = await fetch(`/ui/code-available?code=${encodeURIComponent(code)}`, {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
          signal: pending.signal,
        });
        if (!response.ok) return show('', '');
        const answer = await response.json();
        if (codeInput.value.trim() !== code) return; // typed on meanwhile
        const name = answer.code || code;
        if (answer.available) show(`${name} is available`, 'available');
        else if (answer.reason && !/^taken$/i.test(answer.reason)) show(answer.reason, 'taken');
        else show(`${name} is taken`, 'taken');
      } catch (error) {
        if (error.name !== 'AbortError') show('', '');
      }
    }, HINT_DELAY_MS);
  });
}

// Clicks chart: #clicks-chart[data-series] holds [[unix_seconds, clicks], ...], one entry
// per bucket (data-interval hour|day). Bars in the theme's colours, width of the container.
let chart = null;
let chartResize = null;

function renderChart() {
  chart?.destroy();
  chartResize?.disconnect();
  chart = chartResize = null;
  const el = document.getElementById('clicks-chart');
  if (!el || !window.uPlot) return;
  let series;
  try {
    series = JSON.parse(el.dataset.series || '[]');
  } catch {
    return; // the data table under the chart still shows the numbers
  }
  if (!Array.isArray(series) || series.length === 0) return;
  const uPlot = window.uPlot;
  const daily = el.dataset.interval === 'day';
  const step = daily ? 86400 : 3600;
  const xs = series.map((point) => point[0]);
  const ys = series.map((point) => point[1]);
  const css = getComputedStyle(el);
  const colour = (name) => css.getPropertyValue(name).trim();
  const text = colour('--chart-text');
  const grid = colour('--chart-grid');
  const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  // Legend values in UTC, matching the axis: "2024-05-01 13:00 UTC" or "2024-05-01".
  const when = (u, ts) => (ts == null ? '–'
    : daily ? new Date(ts * 1000).toISOString().slice(0, 10)
      : `${new Date(ts * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`);

  chart = new uPlot({
    width: el.clientWidth,
    height: 240,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    cursor: { y: false, points: { show: false }, drag: { x: false, y: false } },
    legend: { live: true },
    scales: {
      // Bars are centred on their bucket's start; pad half a bucket on each side.
      x: { time: true, range: (u, min, max) => [min - step / 2, max + step / 2] },
      y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] },
    },
    axes: [
      {
        ...axis,
        space: 60,
        // 24-hour UTC labels; the date (and year) is added where it changes.
        values: [
          [86400 * 365, '{YYYY}', null, null, null, null, null, null, 1],
          [86400 * 28, '{MMM}', '\n{YYYY}', null, null, null, null, null, 1],
          [86400, '{D} {MMM}', '\n{YYYY}', null, null, null, null, null, 1],
          [60, '{HH}:{mm}', '\n{D} {MMM} {YYYY}', null, '\n{D} {MMM}', null, null, null, 1],
        ],
      },
      {
        ...axis,
        size: 50,
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7],
        values: (u, ticks) => ticks.map((v) => v.toLocaleString('en')),
      },
    ],
    series: [
      { label: daily ? 'Day (UTC)' : 'Hour (UTC)', value: when },
      {
        label: 'Clicks',
        stroke: colour('--chart-line'),
        fill: colour('--chart-fill'),
        width: 1.5,
        points: { show: false },
        paths: uPlot.paths.bars({ size: [0.8, 48] }),
        value: (u, v) => (v == null ? '–' : v.toLocaleString('en')),
      },
    ],
  }, [xs, ys], el);

  chartResize = new ResizeObserver(() => {
    if (chart && el.clientWidth && el.clientWidth !== chart.width) {
      chart.setSize({ width: el.clientWidth, height: 240 });
    }
  });
  chartResize.observe(el);
}

// Colours come from CSS custom properties: redraw when the colour scheme flips.
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', renderChart);

// Live statistics: every 5 s, fetch #stats[data-refresh], and replace each child of
// #stats whose server markup changed (an unchanged filter form keeps its state and
// focus). Paused while the tab is hidden; stops for good when the session is gone.
const stats = document.getElementById('stats');
const refreshUrl = stats?.dataset.refresh;
// The markup the server sent, taken before the chart adds its own nodes.
let served = stats ? [...stats.children].map((child) => child.outerHTML) : [];
renderChart();

if (refreshUrl) {
  let timer = 0;
  let busy = false;
  let stopped = false;
  const schedule = () => {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  };

  async function refresh() {
    if (busy || stopped || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(refreshUrl, {
        credentials: 'same-origin',
        headers: { Accept: 'text/html' },
        cache: 'no-store',
      });
      const signedOut = response.redirected && new URL(response.url).pathname.startsWith('/ui/signin');
      if (signedOut || response.status !== 200) {
        stopped = true;
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), 'text/html');
      const fresh = page.getElementById('stats');
      if (!fresh) {
        stopped = true;
        return;
      }
      update(fresh);
    } catch {
      // A network hiccup: try again at the next tick.
    } finally {
      busy = false;
      schedule();
    }
  }

  // Swap the children whose markup changed; everything else stays as it is.
  function update(fresh) {
    const next = [...fresh.children];
    const markup = next.map((child) => child.outerHTML);
    if (markup.join('') === served.join('')) return;
    const focused = stats.contains(document.activeElement) ? document.activeElement : null;
    const current = [...stats.children];
    if (current.length !== next.length) {
      keepOpen(stats, fresh);
      stats.replaceChildren(...next);
    } else {
      next.forEach((child, i) => {
        if (markup[i] === served[i]) return;
        keepOpen(current[i], child);
        current[i].replaceWith(child);
      });
    }
    served = markup;
    if (!document.getElementById('clicks-chart')?.hasChildNodes()) renderChart();
    if (focused && !focused.isConnected) refocus(focused);
  }

  // Keep "Chart data" and other <details> open if the user opened them.
  function keepOpen(oldNode, newNode) {
    const opened = [oldNode, ...oldNode.querySelectorAll('details')];
    const fresh = [newNode, ...newNode.querySelectorAll('details')];
    opened.forEach((node, i) => {
      if (node.tagName === 'DETAILS' && node.open && fresh[i]?.tagName === 'DETAILS') fresh[i].open = true;
    });
  }

  // Focus the replacement of the element that had focus, matched by id, else by name.
  function refocus(old) {
    const match = (old.id && document.getElementById(old.id))
      || (old.name && stats.querySelector(`[name="${CSS.escape(old.name)}"]`));
    match?.focus({ preventScroll: true });
  }

  document.addEventListener('visibilitychange', schedule);
  schedule();
}
