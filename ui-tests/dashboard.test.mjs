// End-to-end tests of the snip dashboard (/ui) in headless Chromium against a real server
// (one per file, fresh SQLite database), following /work/ui-contract.md. Each scenario sets up
// the data it needs itself (through the JSON API where set-up is not what it tests), in its own
// browser context, so one failing scenario does not take the others down with it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DESKTOP_CHROME_UA, api, axeCheck, createKey, createLink, getLink, hit, launchBrowser, newContext,
  screenshot, signIn, startLandingSite, startServer, startSite, submitAndWait, tableRows, uniqueToken,
  waitFor,
} from './lib.mjs';

let server;
let browser;
let landing;
let tour;

before(async () => {
  server = await startServer();
  landing = await startLandingSite();
  browser = await launchBrowser();
  tour = await seedTour();
});

after(async () => {
  await browser?.close();
  await landing?.close();
  if (server) {
    const { code, signal } = await server.stop();
    // SIGTERM is a clean shutdown (docs/api.md and README: exit 0).
    assert.equal(code, 0, `snip did not exit 0 on SIGTERM (code ${code}, signal ${signal}); stderr tail:\n${server.stderr().slice(-3000)}`);
  }
});

/**
 * Data worth looking at in scenario 14 (and in docs/screenshots/), made when the server starts:
 * the overview counts clicks that the store has folded into its tables (once a minute), so they
 * have time to get there. Links on example.com (never followed: their clicks are requests without
 * following the redirect) with titles and tags, human clicks from a few browsers and referrers,
 * mistyped codes. The scenarios' own links point at 127.0.0.1, so `q=example.com` lists these only.
 */
async function seedTour() {
  const links = [
    { code: 'getting-started', url: 'https://docs.example.com/guides/getting-started', title: 'Getting started guide', tags: ['docs', 'onboarding'] },
    { code: 'spring-launch', url: 'https://www.example.com/blog/2026/spring-launch?utm_source=newsletter', title: 'Spring launch announcement', tags: ['blog', 'campaign'] },
    { code: 'pricing', url: 'https://www.example.com/pricing', title: 'Pricing', tags: ['marketing'] },
    { code: 'careers', url: 'https://jobs.example.org/company/example', title: 'We are hiring', tags: ['hr'] },
    { url: 'https://status.example.com/', title: 'Service status', tags: [] },
    { url: 'https://www.example.com/events/meetup-november', tags: ['events', 'campaign'] },
  ];
  const agents = [
    DESKTOP_CHROME_UA,
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
  ];
  const referrers = ['https://news.example.org/item?id=4242', 'https://social.example.com/@example/post/17', '', 'https://www.example.com/'];
  const clicksPerLink = [9, 6, 4, 2, 1, 0];
  const created = [];
  let clicks = 0;
  for (const [i, link] of links.entries()) {
    const made = await createLink(server, link);
    created.push(made);
    for (let n = 0; n < clicksPerLink[i]; n += 1) {
      const headers = { 'user-agent': agents[(i + n) % agents.length] };
      if (referrers[n % referrers.length]) headers.referer = referrers[n % referrers.length];
      const { status } = await hit(made.short_url, { headers });
      if (status !== 302) throw new Error(`seeding: ${made.short_url} answered ${status}`);
      clicks += 1;
    }
  }
  for (const typo of ['getting-startd', 'getting-startd', 'getting-startd', 'pricng', 'spring-lanch']) {
    await hit(`${server.base}/${typo}`);
  }
  return { code: created[0].code, clicks };
}

/**
 * A test with browser contexts that are closed afterwards and whose pages must have logged no
 * console error, uncaught exception or CSP violation. `open(options)` gives a new context and page;
 * `openAdmin()` one signed in with the admin key. On failure the server's last log lines are added.
 */
function scenario(name, fn) {
  test(name, { timeout: 120_000 }, async (t) => {
    const opened = [];
    const open = async (options = {}) => {
      const { context, problems } = await newContext(browser, server, options);
      const page = await context.newPage();
      const handle = { context, problems, page };
      opened.push(handle);
      return handle;
    };
    const openAdmin = async (options) => {
      const handle = await open(options);
      await signIn(handle.page, server.adminKey);
      return handle;
    };
    try {
      await fn({ t, open, openAdmin });
      for (const { problems } of opened) problems.assertNone();
    } catch (error) {
      error.message += `\n--- snip stderr (tail):\n${server.stderr().slice(-2000)}`;
      throw error;
    } finally {
      for (const { context } of opened) await context.close();
    }
  });
}

const text = async (locator) => ((await locator.textContent()) ?? '').trim();
const h1 = (page) => text(page.locator('main h1'));
const pathOf = (page) => new URL(page.url()).pathname;
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Asserts a browser response's status; on a mismatch the message has the page's alerts. */
async function assertStatus(page, response, expected, what = `${response.request().method()} ${new URL(response.url()).pathname}`) {
  if (response.status() === expected) return;
  const alerts = await page.locator('[role="alert"], [role="status"]').allTextContents().catch(() => []);
  assert.fail(`${what} answered ${response.status()}, expected ${expected}; the page shows ${page.url()}` +
    (alerts.length ? ` with: ${alerts.map((a) => a.trim()).join(' | ')}` : ''));
}

/** The `<dl class="facts">` of a link's detail page as { term: description }. */
function facts(page) {
  return page.locator('dl.facts').evaluate((dl) => {
    const out = {};
    let term = null;
    for (const el of dl.children) {
      if (el.tagName === 'DT') term = el.textContent.trim();
      else if (el.tagName === 'DD' && term !== null) out[term] = el.textContent.trim();
    }
    return out;
  });
}

/** The codes of the rows of the links table, in order. */
function listedCodes(page) {
  return page.locator('tr[data-code]').evaluateAll((rows) => rows.map((r) => r.dataset.code));
}

/**
 * Checks a chart series `[[unix_seconds, clicks], ...]`: consecutive buckets `step` seconds apart,
 * aligned to `step` (UTC), zeros included, and exactly one bucket holding one click, the bucket of
 * a time between `from` and `to` (the seconds around the click).
 */
function assertOneClickSeries(series, step, from, to) {
  assert.ok(Array.isArray(series) && series.length > 0, `the series is a non-empty array: ${JSON.stringify(series)}`);
  for (const entry of series) {
    assert.ok(Array.isArray(entry) && entry.length === 2 && Number.isInteger(entry[0]) && Number.isInteger(entry[1]),
      `each bucket is [unix_seconds, clicks]: ${JSON.stringify(entry)}`);
    assert.equal(entry[0] % step, 0, `bucket ${entry[0]} is aligned to ${step} s`);
  }
  for (let i = 1; i < series.length; i += 1) {
    assert.equal(series[i][0] - series[i - 1][0], step, `buckets ${i - 1} and ${i} are ${step} s apart`);
  }
  const nonZero = series.filter(([, n]) => n !== 0);
  assert.deepEqual(nonZero.map(([, n]) => n), [1], `exactly one bucket has a click: ${JSON.stringify(nonZero)}`);
  const expected = new Set([Math.floor(from / step) * step, Math.floor(to / step) * step]);
  assert.ok(expected.has(nonZero[0][0]),
    `the click is in the bucket of its time (${[...expected].join(' or ')}), not ${nonZero[0][0]}`);
}

/** The CSP of a page response: present, forbids framing, allows no inline code. */
function assertCsp(response, what) {
  const csp = response.headers()['content-security-policy'];
  assert.ok(csp, `${what}: the response has a Content-Security-Policy header`);
  assert.ok(csp.includes("frame-ancestors 'none'"), `${what}: CSP has frame-ancestors 'none': ${csp}`);
  assert.ok(!csp.includes("'unsafe-inline'"), `${what}: CSP has no 'unsafe-inline': ${csp}`);
  assert.ok(!csp.includes("'unsafe-eval'"), `${what}: CSP has no 'unsafe-eval': ${csp}`);
}

// ---------------------------------------------------------------------------------------------

scenario('1. a wrong key stays on the sign-in page with 401 and an alert; the admin key opens the overview', async ({ open }) => {
  const { page, context, problems } = await open();
  problems.allowStatus(401, /\/ui\/signin$/);

  await page.goto('/ui/signin');
  assert.equal(await h1(page), 'Sign in');
  await page.getByLabel('API key').fill('snip_ThisKeyWasNeverIssued0000000000');
  const wrong = await submitAndWait(page, page.getByRole('button', { name: 'Sign in' }), /^\/ui\/signin$/);

  await assertStatus(page, wrong, 401);
  assert.equal(pathOf(page), '/ui/signin');
  assert.equal(await h1(page), 'Sign in');
  assert.match(await text(page.locator('.alert.error[role="alert"]')), /That API key is not valid\./);
  assert.ok(!(await context.cookies()).some((c) => c.name === 'snip_session'), 'no session cookie after a wrong key');

  await page.getByLabel('API key').fill(server.adminKey);
  const right = await submitAndWait(page, page.getByRole('button', { name: 'Sign in' }), /^\/ui\/signin$/);
  await assertStatus(page, right, 303);
  assert.equal(pathOf(page), '/ui/');
  assert.equal(await h1(page), 'Overview');
  assert.ok((await context.cookies()).some((c) => c.name === 'snip_session'), 'a session cookie after the right key');
});

scenario('2. creating a link with a custom code: availability hint, a taken code refused with the form kept, "Link created.", short URL, QR code, copy button', async ({ openAdmin }) => {
  const taken = await createLink(server, { url: `${landing.origin}/existing`, code: uniqueToken('taken-') });
  const code = uniqueToken('ui-');
  const destination = `${landing.origin}/created/${code}`;
  const { page, context, problems } = await openAdmin();
  problems.allowStatus(409, /\/ui\/links$/);

  await page.goto('/ui/links/new');
  assert.equal(await h1(page), 'New link');
  await page.getByLabel('Destination URL').fill(destination);
  const codeInput = page.getByLabel('Custom code (optional)');
  const hint = page.locator('#code-hint');

  await codeInput.fill(taken.code);
  await waitFor(async () => (await text(hint)).includes(`${taken.code} is taken`),
    { what: `#code-hint to say "${taken.code} is taken"` });
  await page.getByLabel('Title', { exact: true }).fill('Made in the browser');
  await page.getByLabel('Tags (comma-separated)').fill('e2e, browser');

  // Submitted anyway: refused (docs/api.md: a taken code is 409), the form comes back filled in.
  const refused = await submitAndWait(page, page.getByRole('button', { name: 'Create link' }), /^\/ui\/links$/);
  await assertStatus(page, refused, 409);
  assert.equal(await h1(page), 'New link');
  assert.match(await text(page.locator('.alert.error[role="alert"]')), /taken/);
  assert.equal(await page.getByLabel('Destination URL').inputValue(), destination);
  assert.equal(await page.getByLabel('Title', { exact: true }).inputValue(), 'Made in the browser');
  assert.equal(await page.getByLabel('Tags (comma-separated)').inputValue(), 'e2e, browser');
  assert.equal((await getLink(server, taken.code)).url, taken.url, 'the existing link is unchanged');

  await page.getByLabel('Custom code (optional)').fill(code);
  await waitFor(async () => (await text(page.locator('#code-hint'))).includes(`${code} is available`),
    { what: `#code-hint to say "${code} is available"` });
  const created = await submitAndWait(page, page.getByRole('button', { name: 'Create link' }), /^\/ui\/links$/);
  await assertStatus(page, created, 303);
  await page.waitForURL((u) => u.pathname === `/ui/links/${code}` && u.searchParams.get('created') === '1');

  assert.match(await text(page.locator('.alert.ok[role="status"]')), /Link created\./);
  const shortUrl = await page.locator('#short-url').inputValue();
  assert.ok(shortUrl.endsWith(`/${code}`), `short URL ${shortUrl} ends with /${code}`);
  assert.equal(shortUrl, `${server.base}/${code}`);

  const stored = await getLink(server, code);
  assert.equal(stored.url, destination);
  assert.equal(stored.title, 'Made in the browser');
  assert.deepEqual([...stored.tags].sort(), ['browser', 'e2e']);

  await waitFor(() => page.locator('img.qr').evaluate((img) => img.complete && img.naturalWidth > 0),
    { what: 'the QR code image to load (naturalWidth > 0)' });
  assert.equal(await page.locator('img.qr').getAttribute('alt'), `QR code for ${shortUrl}`);

  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  await page.evaluate(() => navigator.clipboard.writeText('not the short URL'));
  const copy = page.locator('button.copy[data-copy="#short-url"]');
  await copy.click();
  await waitFor(async () => (await text(copy)) === 'Copied', { what: 'the copy button to say "Copied"' });
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), shortUrl);
});

scenario('3. searching the links list finds the link by destination and by code, and not an unrelated one', async ({ openAdmin }) => {
  const needle = uniqueToken('needle');
  const wanted = await createLink(server, { url: `${landing.origin}/docs/${needle}/page`, code: uniqueToken('find-') });
  const unrelated = await createLink(server, { url: `${landing.origin}/unrelated/${uniqueToken()}`, code: uniqueToken('other-') });
  const { page } = await openAdmin();

  await page.goto('/ui/links');
  assert.equal(await h1(page), 'Links');
  const all = await listedCodes(page);
  assert.ok(all.includes(wanted.code) && all.includes(unrelated.code), `both links listed unfiltered: ${all}`);

  const search = async (q) => {
    await page.getByLabel('Search').fill(q);
    await Promise.all([
      page.waitForURL((u) => u.searchParams.get('q') === q),
      page.locator('form.filters').getByRole('button', { name: 'Apply' }).click(),
    ]);
    return listedCodes(page);
  };

  const byDestination = await search(needle);
  assert.ok(byDestination.includes(wanted.code), `found by part of its destination: ${byDestination}`);
  assert.ok(!byDestination.includes(unrelated.code), `the unrelated link is not listed: ${byDestination}`);
  const row = page.locator(`tr[data-code="${wanted.code}"]`);
  assert.equal(await row.locator('td, th').first().locator('a').getAttribute('href'), `/ui/links/${wanted.code}`);
  assert.equal(await text(row.locator('td.num')), '0');
  assert.match(await text(row), /Active/);

  const codePart = wanted.code.slice('find-'.length);
  const byCode = await search(codePart);
  assert.ok(byCode.includes(wanted.code), `found by part of its code: ${byCode}`);
  assert.ok(!byCode.includes(unrelated.code), `the unrelated link is not listed: ${byCode}`);
});

scenario('4. a click on the short URL lands on the destination and shows in the stats (refresh, hourly and daily series)', async ({ open, openAdmin }) => {
  const code = uniqueToken('visit-');
  const destination = `${landing.origin}/visited/${code}`;
  const link = await createLink(server, { url: destination, code });
  const { page } = await openAdmin();

  await page.goto(`/ui/links/${code}?interval=hour`);
  assert.equal(await text(page.locator('#range-clicks')), '0');
  assert.equal(await page.locator('#clicks-chart').getAttribute('data-interval'), 'hour');
  await waitFor(() => page.locator('#clicks-chart canvas').count(), { what: 'uPlot to draw the chart (a canvas in #clicks-chart)' });
  // A marker that a navigation would lose: the count must come from the page's own refresh.
  await page.evaluate(() => { window.__noReload = true; });

  // The visitor is a desktop browser (a headless user agent may rightly be counted as a bot).
  const visitor = await open({ userAgent: DESKTOP_CHROME_UA });
  const clickFrom = nowSeconds();
  await visitor.page.goto(link.short_url);
  const clickTo = nowSeconds();
  assert.equal(visitor.page.url(), destination);
  assert.equal(await text(visitor.page.locator('body')), `landed /visited/${code}`);

  await waitFor(async () => (await text(page.locator('#range-clicks'))) === '1',
    { timeout: 15_000, interval: 250, what: '#range-clicks to become 1 through the page\'s 5 s refresh' });
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was refreshed in place, not reloaded');
  assert.equal(await text(page.locator('#total-clicks')), '1');
  await waitFor(() => page.locator('#clicks-chart canvas').count(), { what: 'the chart drawn again after the refresh' });
  const hourly = JSON.parse(await page.locator('#clicks-chart').getAttribute('data-series'));
  assertOneClickSeries(hourly, 3600, clickFrom, clickTo);
  assert.match(await text(page.locator('#stats figcaption')), /per hour/);
  assert.equal((await tableRows(page, 'Clicks per hour'))?.length, hourly.length, 'the chart data table has a row per bucket');

  await page.locator('#stats').getByLabel('Interval').selectOption('day');
  await Promise.all([
    page.waitForURL((u) => u.searchParams.get('interval') === 'day'),
    page.locator('#stats form.filters').getByRole('button', { name: 'Apply' }).click(),
  ]);
  assert.match(await text(page.locator('#stats figcaption')), /per day/);
  assert.equal(await page.locator('#clicks-chart').getAttribute('data-interval'), 'day');
  const daily = JSON.parse(await page.locator('#clicks-chart').getAttribute('data-series'));
  assertOneClickSeries(daily, 86_400, clickFrom, clickTo);
  assert.equal(await text(page.locator('#range-clicks')), '1');
  assert.equal(await text(page.locator('#total-clicks')), '1');
});

scenario('5. editing the destination sends the next redirect to the new destination', async ({ openAdmin }) => {
  const code = uniqueToken('edit-');
  const first = `${landing.origin}/first/${code}`;
  const second = `${landing.origin}/second/${code}`;
  const link = await createLink(server, { url: first, code });
  assert.deepEqual(await hit(link.short_url), { status: 302, location: first });
  const { page } = await openAdmin();

  await page.goto(`/ui/links/${code}/edit`);
  assert.equal(await h1(page), `Edit ${code}`);
  const url = page.getByLabel('Destination URL');
  assert.equal(await url.inputValue(), first, 'the form is filled with the current destination');
  await url.fill(second);
  const saved = await submitAndWait(page, page.getByRole('button', { name: 'Save' }), new RegExp(`^/ui/links/${code}/edit$`));
  await assertStatus(page, saved, 303);
  assert.equal(pathOf(page), `/ui/links/${code}`);
  assert.equal((await facts(page)).Destination, second);

  assert.deepEqual(await hit(link.short_url), { status: 302, location: second });
});

scenario('6. disabling a link makes it answer 410; enabling it makes it redirect again', async ({ openAdmin }) => {
  const code = uniqueToken('toggle-');
  const destination = `${landing.origin}/toggle/${code}`;
  const link = await createLink(server, { url: destination, code });
  const { page } = await openAdmin();
  await page.goto(`/ui/links/${code}`);

  const disabled = await submitAndWait(page, page.getByRole('button', { name: 'Disable' }), new RegExp(`^/ui/links/${code}/disable$`));
  await assertStatus(page, disabled, 303);
  assert.equal(pathOf(page), `/ui/links/${code}`);
  assert.equal((await facts(page)).Status, 'Disabled');
  assert.equal((await hit(link.short_url)).status, 410);
  assert.equal((await getLink(server, code)).disabled, true);

  const enabled = await submitAndWait(page, page.getByRole('button', { name: 'Enable' }), new RegExp(`^/ui/links/${code}/enable$`));
  await assertStatus(page, enabled, 303);
  assert.equal((await facts(page)).Status, 'Active');
  assert.deepEqual(await hit(link.short_url), { status: 302, location: destination });
  assert.equal((await getLink(server, code)).disabled, false);
});

scenario('7. deleting a link after the confirmation page removes it from the list; its code answers 410 (docs/api.md: deleted links)', async ({ openAdmin }) => {
  const code = uniqueToken('gone-');
  const link = await createLink(server, { url: `${landing.origin}/gone/${code}`, code });
  const { page } = await openAdmin();
  await page.goto(`/ui/links/${code}`);

  await Promise.all([
    page.waitForURL((u) => u.pathname === `/ui/links/${code}/delete`),
    page.locator('main').getByRole('link', { name: 'Delete', exact: true }).click(),
  ]);
  assert.equal(await h1(page), `Delete ${code}?`);
  assert.match(await text(page.locator('main')), /never/i, 'the page says the code is never reissued');
  assert.equal(await page.getByRole('link', { name: 'Cancel' }).getAttribute('href'), `/ui/links/${code}`);

  const deleted = await submitAndWait(page, page.getByRole('button', { name: 'Delete permanently' }), new RegExp(`^/ui/links/${code}/delete$`));
  await assertStatus(page, deleted, 303);
  const landed = new URL(page.url());
  assert.equal(landed.pathname, '/ui/links');
  assert.equal(landed.searchParams.get('deleted'), code);
  assert.ok(!(await listedCodes(page)).includes(code), 'the deleted link is not listed');

  // docs/api.md: "DELETE … the code then answers 410" (deleted codes are never reissued).
  assert.equal((await hit(link.short_url)).status, 410);
});

scenario('8. a user key sees no admin pages and only its own links', async ({ open }) => {
  const user = await createKey(server, { name: uniqueToken('user-'), role: 'user' });
  const own = await createLink(server, { url: `${landing.origin}/mine`, code: uniqueToken('mine-') }, { key: user.key });
  const admins = await createLink(server, { url: `${landing.origin}/admins`, code: uniqueToken('admins-') });
  const { page, problems } = await open();
  problems.allowStatus(403, /\/ui\/(keys|unknown)$/);
  problems.allowStatus(404, new RegExp(`/ui/links/${admins.code}$`));
  await signIn(page, user.key);

  const nav = await page.locator('nav[aria-label="Main"] a').evaluateAll((as) => as.map((a) => a.textContent.trim()));
  assert.ok(nav.includes('Overview') && nav.includes('Links'), `nav: ${nav}`);
  assert.ok(!nav.includes('Keys'), `no "Keys" in the nav of a user: ${nav}`);
  assert.ok(!nav.includes('Unknown codes'), `no "Unknown codes" in the nav of a user: ${nav}`);
  const who = await text(page.locator('.who'));
  assert.ok(who.includes(user.name) && /user/i.test(who), `.who names the key and its role: "${who}"`);

  const keys = await page.goto('/ui/keys');
  await assertStatus(page, keys, 403);
  assert.ok(await page.locator('.alert.error[role="alert"]').count(), 'the 403 page has an alert');
  await assertStatus(page, await page.goto('/ui/unknown'), 403);

  await page.goto('/ui/links');
  assert.deepEqual(await listedCodes(page), [own.code]);
  await assertStatus(page, await page.goto(`/ui/links/${admins.code}`), 404, 'another key\'s link (not revealed)');
});

scenario('9. an admin creates a user key on the keys page (shown once, works), then revokes it (401)', async ({ openAdmin }) => {
  const { page } = await openAdmin();
  await page.goto('/ui/keys');
  assert.equal(await h1(page), 'API keys');

  const name = uniqueToken('made-in-ui-');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Role').selectOption('user');
  const created = await submitAndWait(page, page.getByRole('button', { name: 'Create key' }), /^\/ui\/keys$/);
  await assertStatus(page, created, 200);
  assert.match(created.headers()['cache-control'] ?? '', /no-store/);
  assert.match(await text(page.locator('.alert.ok[role="status"]')), /Key created\. Copy it now: it is not shown again\./);
  const secret = await page.locator('#new-key').inputValue();
  assert.match(secret, /^snip_/);
  assert.equal((await api(server, 'GET', '/api/v1/links', { key: secret })).status, 200, 'the new key works against the API');

  await page.goto('/ui/keys');
  assert.equal(await page.locator('#new-key').count(), 0, 'the secret is not shown again');
  assert.ok(!(await page.content()).includes(secret), 'the secret is nowhere on the keys page');
  const row = page.locator('tr', { hasText: name });
  assert.match(await text(row), /user/i);
  const revoke = row.getByRole('button', { name: 'Revoke' });

  const dismissed = new Promise((resolve) => page.once('dialog', async (d) => { await d.dismiss(); resolve(d.message()); }));
  await revoke.click();
  const question = await dismissed;
  assert.ok(question.startsWith(`Revoke the key ${name}?`), `the confirmation names the key: "${question}"`);
  assert.equal((await api(server, 'GET', '/api/v1/links', { key: secret })).status, 200, 'a dismissed confirmation revokes nothing');

  page.once('dialog', (d) => d.accept());
  const revoked = await submitAndWait(page, revoke, /^\/ui\/keys\/[^/]+\/revoke$/);
  await assertStatus(page, revoked, 303);
  assert.equal(pathOf(page), '/ui/keys');
  assert.equal((await api(server, 'GET', '/api/v1/links', { key: secret })).status, 401, 'the revoked key answers 401');
});

scenario('10. requests for an unknown code are counted on the unknown codes page', async ({ openAdmin }) => {
  const unknown = 'nosuchcode123';
  for (let i = 0; i < 3; i += 1) assert.equal((await hit(`${server.base}/${unknown}`)).status, 404);
  const { page } = await openAdmin();

  const row = await waitFor(async () => {
    await page.goto('/ui/unknown');
    return (await tableRows(page, 'Unknown codes'))?.find((cells) => cells[0] === unknown);
  }, { timeout: 15_000, interval: 500, what: `${unknown} on /ui/unknown` });
  assert.equal(await h1(page), 'Unknown codes');
  assert.equal(row[1], '3', `${unknown} was requested 3 times: ${JSON.stringify(row)}`);
});

scenario('11. signing out leads to the sign-in page and the old session cookie no longer works', async ({ openAdmin }) => {
  const { page, context } = await openAdmin();
  const cookie = (await context.cookies()).find((c) => c.name === 'snip_session');
  assert.ok(cookie, 'signed in with a snip_session cookie');
  const replay = () => fetch(`${server.base}/ui/links`, { headers: { cookie: `snip_session=${cookie.value}` }, redirect: 'manual' });
  assert.equal((await replay()).status, 200, 'the cookie works before signing out (the replay is a valid probe)');

  const out = await submitAndWait(page, page.getByRole('button', { name: 'Sign out' }), /^\/ui\/signout$/);
  await assertStatus(page, out, 303);
  assert.equal(pathOf(page), '/ui/signin');
  assert.equal(await h1(page), 'Sign in');

  const after = await replay();
  assert.equal(after.status, 303);
  assert.equal(new URL(after.headers.get('location'), server.base).pathname, '/ui/signin');
});

scenario('12. CSRF: a form posted from another origin and a wrong csrf field are refused with 403, nothing changes', async ({ openAdmin }) => {
  const code = uniqueToken('csrf-');
  const link = await createLink(server, { url: `${landing.origin}/csrf/${code}`, code });
  const { page, problems } = await openAdmin();
  problems.allowStatus(403, new RegExp(`/ui/links/${code}/disable$`));
  const target = `${server.base}/ui/links/${code}/disable`;
  // Another port of the same host is another origin but the same site: the SameSite=Strict
  // cookie is sent, so only the CSRF defence can refuse this.
  const attacker = await startSite((req, res) => {
    if (req.url === '/attack.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end('document.forms[0].submit();\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><title>Prize</title><form method="post" action="${target}"></form><script src="/attack.js"></script></html>`);
  });
  try {
    const [forged] = await Promise.all([
      page.waitForResponse((r) => r.url() === target && r.request().method() === 'POST'),
      page.goto(`${attacker.origin}/`, { waitUntil: 'commit' }),
    ]);
    // The page now shows the answer to the forged POST (and no navigation is still under way).
    await page.waitForURL(target);
    const sent = await forged.request().allHeaders();
    assert.match(sent.cookie ?? '', /snip_session=/, 'the browser sent the session cookie with the forged request');
    await assertStatus(page, forged, 403);
    assert.equal((await getLink(server, code)).disabled, false, 'the link is still enabled');
  } finally {
    await attacker.close();
  }

  await page.goto(`/ui/links/${code}`);
  await page.locator(`form[action="/ui/links/${code}/disable"] input[name="csrf"]`)
    .evaluate((input) => { input.value = 'not-the-token'; });
  const wrong = await submitAndWait(page, page.getByRole('button', { name: 'Disable' }), new RegExp(`^/ui/links/${code}/disable$`));
  await assertStatus(page, wrong, 403);
  assert.equal((await getLink(server, code)).disabled, false, 'the link is still enabled');
  assert.equal((await hit(link.short_url)).status, 302);
});

scenario('13. the session cookie is HttpOnly, SameSite=Strict, Path=/ and invisible to scripts', async ({ openAdmin }) => {
  const { page, context } = await openAdmin();
  const cookie = (await context.cookies()).find((c) => c.name === 'snip_session');
  assert.ok(cookie, 'a snip_session cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('snip_session'), 'document.cookie does not show it');
});

scenario('14. every page passes axe (light and dark), sends the CSP, and is photographed in 4 variants', async ({ t, open, openAdmin }) => {
  const { code, clicks } = tour;
  const htmlResponses = [];
  const visit = async (page, urlPath, name, { current, ready } = {}) => {
    const response = await page.goto(urlPath);
    await assertStatus(page, response, 200);
    assertCsp(response, urlPath);
    assert.equal(await page.locator('main#main').locator('h1, h2, h3, h4, h5, h6').first().evaluate((el) => el.tagName), 'H1',
      `${urlPath}: the first heading of main is an h1`);
    if (current) {
      assert.equal(await text(page.locator('nav[aria-label="Main"] a[aria-current="page"]')), current, `${urlPath}: current nav link`);
    }
    if (ready) await ready(page);
    await axeCheck(page, `${name} (light)`);
    await page.emulateMedia({ colorScheme: 'dark' });
    await axeCheck(page, `${name} (dark)`);
    await page.emulateMedia({ colorScheme: 'light' });
    const files = await screenshot(page, name);
    t.diagnostic(`${name}: ${files.length} screenshots`);
  };
  const watchHtml = (page) => page.on('response', (r) => {
    if (r.url().startsWith(server.base) && (r.headers()['content-type'] ?? '').startsWith('text/html')) htmlResponses.push(r);
  });

  const anonymous = await open();
  watchHtml(anonymous.page);
  await visit(anonymous.page, '/ui/signin', 'signin');

  const { page } = await openAdmin();
  watchHtml(page);
  // The overview shows clicks once the store has folded them in (at most a minute: the page says so).
  await waitFor(async () => {
    await page.goto('/ui/');
    return ((await tableRows(page, 'Top links')) ?? []).some((cells) => cells[0] === code);
  }, { timeout: 75_000, interval: 1000, what: `the overview's "Top links" to list ${code}` });
  await visit(page, '/ui/', 'overview', { current: 'Overview' });
  const cards = await page.locator('section.cards .card .big').allTextContents();
  const [day, week, month] = cards.map((c) => Number(c.trim()));
  assert.equal(cards.length, 3, 'three cards');
  assert.ok(day >= clicks && week >= day && month >= week, `cards count the ${clicks} new human clicks: ${cards}`);
  const topLinks = (await tableRows(page, 'Top links')) ?? [];
  assert.ok(topLinks.some((cells) => cells[0] === code),
    `"Top links" lists ${code}: ${JSON.stringify(topLinks)}`);
  const topReferrers = (await tableRows(page, 'Top referrers')) ?? [];
  assert.ok(topReferrers.some((cells) => cells.join(' ').includes('news.example.org')),
    `"Top referrers" lists news.example.org: ${JSON.stringify(topReferrers)}`);
  await visit(page, '/ui/links?q=example.com', 'links', { current: 'Links' });
  await visit(page, '/ui/links/new', 'new-link');
  await visit(page, `/ui/links/${code}`, 'link-detail', {
    ready: async (p) => {
      await waitFor(() => p.locator('#clicks-chart canvas').count(), { what: 'the chart to be drawn' });
      await waitFor(() => p.locator('img.qr').evaluate((img) => img.complete && img.naturalWidth > 0), { what: 'the QR code to load' });
    },
  });
  await visit(page, `/ui/links/${code}/edit`, 'edit-link');
  await visit(page, `/ui/links/${code}/delete`, 'delete-link');
  await visit(page, '/ui/keys', 'keys', { current: 'Keys' });
  await visit(page, '/ui/unknown', 'unknown-codes', { current: 'Unknown codes' });

  assert.ok(htmlResponses.length >= 9, `saw the HTML responses (${htmlResponses.length})`);
  for (const r of htmlResponses) assertCsp(r, `${r.request().method()} ${new URL(r.url()).pathname}`);
});

scenario('15. the first view of the overview transfers under 200 KB', async ({ t, open, openAdmin }) => {
  const signedIn = await openAdmin();
  const cookies = (await signedIn.context.cookies()).filter((c) => c.name === 'snip_session');
  // A fresh context (empty cache) carrying only the session: the overview is its first page.
  const { context, page } = await open();
  await context.addCookies(cookies);
  const sizes = [];
  page.on('response', (r) => sizes.push((async () => {
    let bytes = 0;
    try { bytes = (await r.body()).length; } catch { /* a redirect has no body */ }
    return { url: r.url(), status: r.status(), bytes };
  })()));
  const response = await page.goto('/ui/', { waitUntil: 'networkidle' });
  await assertStatus(page, response, 200);
  assert.equal(await h1(page), 'Overview');
  const all = await Promise.all(sizes);
  const total = all.reduce((sum, r) => sum + r.bytes, 0);
  t.diagnostic(`overview first view: ${total} bytes in ${all.length} responses: ` +
    all.map((r) => `${new URL(r.url).pathname} ${r.status} ${r.bytes}`).join(', '));
  assert.ok(total < 200_000, `the overview's first view transfers ${total} bytes, under 200,000`);
});

scenario('16. routes: /ui redirects to /ui/, pages need a session, assets are immutable', async ({ openAdmin }) => {
  const slash = await fetch(`${server.base}/ui`, { redirect: 'manual' });
  assert.equal(slash.status, 308);
  assert.equal(new URL(slash.headers.get('location'), server.base).pathname, '/ui/');
  for (const urlPath of ['/ui/', '/ui/links', '/ui/links/new', '/ui/keys', '/ui/unknown']) {
    const res = await fetch(server.base + urlPath, { redirect: 'manual' });
    assert.equal(res.status, 303, `${urlPath} without a session`);
    assert.equal(new URL(res.headers.get('location'), server.base).pathname, '/ui/signin', `${urlPath} sends to sign-in`);
  }

  const { page } = await openAdmin();
  const assets = await page.evaluate(() => [
    ...[...document.querySelectorAll('link[rel="stylesheet"]')].map((l) => l.getAttribute('href')),
    ...[...document.querySelectorAll('script[src]')].map((s) => s.getAttribute('src')),
  ]);
  assert.ok(assets.some((a) => /^\/ui\/assets\/app\.[^.]+\.css$/.test(a)), `the app stylesheet: ${assets}`);
  assert.ok(assets.some((a) => /^\/ui\/assets\/app\.[^.]+\.js$/.test(a)), `the app module: ${assets}`);
  for (const asset of assets) {
    const res = await fetch(server.base + asset);
    await res.arrayBuffer();
    assert.equal(res.status, 200, asset);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', `${asset} is cached for good`);
  }
});
