// A citizen's journey through the demo e-services in Debian's chromium, in Arabic and in
// English: log in to the civil-status service, open the land registry (step-up to a
// one-time code, no second password), log out of both at once. Screenshots of the login
// page in both languages go to the artefact directory.
//
//   node demo.mjs <base URL> <artefact dir> <base32 TOTP secret of the demo citizen>
//
// Exits non-zero with the first failed expectation.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';

const [base, out, secret] = process.argv.slice(2);
if (!base || !out || !secret) {
  console.error('usage: node demo.mjs <base URL> <artefact dir> <TOTP secret>');
  process.exit(2);
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function totp(base32, stepOffset) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + stepOffset));
  const mac = crypto.createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, '0');
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});

// Consent is asked once per service and remembered: the second journey goes straight on.
async function consentIfAsked(page) {
  await page.waitForSelector('form[action="/consent"], .welcome');
  if (await page.locator('form[action="/consent"]').count() === 1) {
    await page.click('button[value=allow]');
    await page.waitForSelector('.welcome');
  }
}

async function loggedOut(page, service) {
  // Back-channel logout reaches the services in the background: allow it a moment.
  for (let i = 0; i < 20; i++) {
    await page.goto(`${base}/demo/${service}/`);
    if (await page.locator('a.login').count() === 1) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`${service} still shows a session after logout`);
}

try {
  for (const [lang, locale, step, words] of [
    ['ar', 'ar-JO', 0, { login: 'تسجيل الدخول', service: 'شهادات الأحوال المدنية', level: 'منخفض' }],
    ['en', 'en-GB', 1, { login: 'Log in', service: 'Civil-status certificates', level: 'Low' }],
  ]) {
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    await page.goto(`${base}/demo/civil-status/`);
    await page.click('a.login');
    await page.waitForSelector('#national_id');
    const root = page.locator('html');
    expect(await root.getAttribute('lang') === lang, `page language ${await root.getAttribute('lang')}, expected ${lang}`);
    expect(await root.getAttribute('dir') === (lang === 'ar' ? 'rtl' : 'ltr'), 'page direction');
    const text = await page.locator('main').innerText();
    expect(text.includes(words.login) && text.includes(words.service) && text.includes(words.level), `login page (${lang}) lacks the title, service or level: ${text}`);
    // Keyboard: focus starts on the identifier, Tab moves to the password.
    expect(await page.evaluate(() => document.activeElement.id) === 'national_id', 'focus starts on the national id');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement.id) === 'password', 'Tab goes to the password');
    await page.screenshot({ path: `${out}/login-${lang}.png`, fullPage: true });

    await page.fill('#national_id', '9861234567');
    await page.fill('#password', 'demo-password-1');
    await page.click('button[type=submit]');
    await consentIfAsked(page);
    const welcome = await page.locator('.welcome').innerText();
    expect(welcome.includes('ليلى حداد') && welcome.includes('Layla Haddad'), `welcome on civil-status: ${welcome}`);

    // The land registry needs `substantial`: only the one-time code is asked.
    await page.goto(`${base}/demo/land-registry/`);
    await page.click('a.login');
    await page.waitForSelector('#code');
    expect(await page.locator('#password').count() === 0, 'a step-up does not ask for the password again');
    await page.screenshot({ path: `${out}/step-up-${lang}.png`, fullPage: true });
    await page.fill('#code', totp(secret, step));
    await page.click('button[type=submit]');
    await consentIfAsked(page);
    const claims = await page.locator('dl').innerText();
    expect(claims.includes('substantial') && claims.includes('9861234567'), `land registry claims: ${claims}`);

    // One logout ends both.
    await page.click('form[action$="/logout"] button');
    await page.waitForURL(`${base}/demo/land-registry/**`);
    await loggedOut(page, 'land-registry');
    await loggedOut(page, 'civil-status');
    await context.close();
    console.log(`ok: ${lang}`);
  }
} finally {
  await browser.close();
}
