// A citizen's journey through the demo e-services in Debian's chromium, in Arabic and in
// English: log in to the civil-status service, open the land registry (step-up to a
// one-time code, no second password), log out of both at once. Screenshots of the login
// page in both languages go to the artefact directory.
//
//   node demo.mjs <base URL> <artefact dir> <base32 TOTP secret of the demo citizen> \
//        <hawiya binary> <data dir> <smart-ID device dir> <a PDF to sign>
//
// Then the notary (level high) with smart-ID: the page shows a verification code, the
// reference device (`hawiya device approve`, its keys on SoftHSM2) approves with PIN1; a
// suspended smart-ID is refused with the suspension message, and works again once resumed,
// in English and then in Arabic. Then the notary asks the citizen, through the provider's
// agency signing API, to sign a power of attorney it writes; PIN2 signs, the page offers
// the signed PDF. Last, anyone verifies that PDF on /verify in both languages, and a copy
// with a changed byte fails.
//
// Exits non-zero with the first failed expectation.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const [base, out, secret, hawiya, data, device, pdf] = process.argv.slice(2);
if (!base || !out || !secret || !hawiya || !data || !device || !pdf) {
  console.error('usage: node demo.mjs <base URL> <artefact dir> <TOTP secret> <hawiya> <data dir> <device dir> <a PDF to sign>');
  process.exit(2);
}
const SMART_ID_CITIZEN = '9861234568';
const PIN1 = '4321';
const PIN2 = '54321';

function hawiyaCli(args, input) {
  return execFileSync(hawiya, args, { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

// Starts a smart-ID login on the notary; returns the verification code the page shows.
async function smartIdLogin(page) {
  await page.goto(`${base}/demo/notary/`);
  await page.click('a.login');
  await page.waitForSelector('#smart_id_national_id');
  expect(await page.locator('#password').count() === 0, 'no password form where only smart-ID reaches the level');
  await page.fill('#smart_id_national_id', SMART_ID_CITIZEN);
  await page.click('form[action="/login/smart-id"] button');
  await page.waitForSelector('#verification-code');
  return (await page.locator('#verification-code').innerText()).trim();
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

  // Smart-ID at level high, in English: the device approves what the page shows.
  const context = await browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  let code = await smartIdLogin(page);
  await page.screenshot({ path: `${out}/smart-id-waiting.png`, fullPage: true });
  const pending = hawiyaCli(['device', 'pending', '--dir', device]);
  expect(pending.includes(`Verification code: ${code}`), `the device shows the page's code ${code}: ${pending}`);
  hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN1}\n`);
  // The waiting page refreshes itself (no JavaScript) and goes on once the device answered.
  await consentIfAsked(page);
  const claims = await page.locator('dl').innerText();
  expect(claims.includes('high') && claims.includes('hwk') && claims.includes(SMART_ID_CITIZEN), `notary claims: ${claims}`);
  await page.click('form[action$="/logout"] button');
  await page.waitForURL(`${base}/demo/notary/**`);
  await loggedOut(page, 'notary');

  // Suspended: the next login is refused with the suspension message.
  hawiyaCli(['citizen', 'suspend', '--data', data, '--national-id', SMART_ID_CITIZEN]);
  code = await smartIdLogin(page);
  let refused = '';
  try {
    hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN1}\n`);
  } catch (e) {
    refused = String(e.stderr);
  }
  expect(refused.includes('suspended'), `the device hears of the suspension: ${refused}`);
  await page.waitForSelector('#smart-id-error');
  const message = await page.locator('#smart-id-error').innerText();
  expect(message.includes('suspended'), `the page says the smart-ID is suspended: ${message}`);
  await page.screenshot({ path: `${out}/smart-id-suspended.png`, fullPage: true });

  // Resumed: in again.
  hawiyaCli(['citizen', 'resume', '--data', data, '--national-id', SMART_ID_CITIZEN]);
  code = await smartIdLogin(page);
  hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN1}\n`);
  await consentIfAsked(page);
  expect((await page.locator('dl').innerText()).includes('high'), 'logged in at high after resumption');
  await context.close();

  // The same in Arabic, right to left.
  const arabic = await browser.newContext({ locale: 'ar-JO' });
  const arPage = await arabic.newPage();
  code = await smartIdLogin(arPage);
  const root = arPage.locator('html');
  expect(await root.getAttribute('lang') === 'ar' && await root.getAttribute('dir') === 'rtl', 'the smart-ID page is Arabic, right to left');
  const waiting = await arPage.locator('main').innerText();
  expect(waiting.includes('الكاتب العدل') && waiting.includes('بانتظار موافقتك'), `Arabic waiting page: ${waiting}`);
  await arPage.screenshot({ path: `${out}/smart-id-waiting-ar.png`, fullPage: true });
  hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN1}\n`);
  await consentIfAsked(arPage);
  expect((await arPage.locator('dl').innerText()).includes('high'), 'logged in at high in Arabic');
  console.log('ok: smart-id');

  // Signing a PDF on /sign in Arabic with the session at high: the page and the device show
  // the same code, PIN2 signs, the page (refreshing itself) offers the signed file.
  await arPage.goto(`${base}/sign`);
  expect(await arPage.locator('html').getAttribute('dir') === 'rtl', 'the signing page is right to left');
  await arPage.setInputFiles('#document', pdf);
  await arPage.click('form[action="/sign"] button');
  await arPage.waitForSelector('#verification-code');
  code = (await arPage.locator('#verification-code').innerText()).trim();
  await arPage.screenshot({ path: `${out}/sign-waiting-ar.png`, fullPage: true });
  const signing = hawiyaCli(['device', 'pending', '--dir', device]);
  expect(signing.includes(`Verification code: ${code}`) && signing.includes('PIN2'), `the device shows the signing request: ${signing}`);
  hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN2}\n`);
  await arPage.waitForSelector('#download', { timeout: 15000 });
  const done = await arPage.locator('main').innerText();
  expect(done.includes('تم توقيع المستند') && done.includes('PAdES-BASELINE-LT'), `Arabic signed page: ${done}`);
  await arPage.screenshot({ path: `${out}/signed-ar.png`, fullPage: true });
  const [download] = await Promise.all([arPage.waitForEvent('download'), arPage.click('#download')]);
  const saved = `${out}/signed-in-browser.pdf`;
  await download.saveAs(saved);
  const original = fs.readFileSync(pdf);
  const signed = fs.readFileSync(saved);
  expect(signed.length > original.length && signed.subarray(0, original.length).equals(original), 'the downloaded file is the PDF with the signature appended');
  console.log('ok: sign');

  // The notary as an agency: still logged in at high, the citizen asks to sign the power of
  // attorney the notary writes; the notary asks the provider's signing API (client
  // credentials, the id_token's sub), the page shows the code the device shows with the
  // notary's name and the document, PIN2 signs, the page (refreshing itself) offers the file.
  await arPage.goto(`${base}/demo/notary/`);
  await arPage.click('#sign-power-of-attorney');
  await arPage.waitForSelector('#verification-code');
  code = (await arPage.locator('#verification-code').innerText()).trim();
  const asking = await arPage.locator('main').innerText();
  expect(asking.includes('توقيع الوكالة') && asking.includes('Sign the power of attorney'), `the notary's signing page, both languages: ${asking}`);
  await arPage.screenshot({ path: `${out}/demo-sign-waiting-ar.png`, fullPage: true });
  const agency = hawiyaCli(['device', 'pending', '--dir', device]);
  expect(agency.includes('Notary public asks you to sign "power-of-attorney.pdf" (PIN2, signing key)') && agency.includes(`Verification code: ${code}`),
    `the device shows the notary, the document and the page's code ${code}: ${agency}`);
  hawiyaCli(['device', 'approve', '--dir', device, '--pin-stdin', '--code', code], `${PIN2}\n`);
  await arPage.waitForSelector('#download', { timeout: 15000 });
  const offered = await arPage.locator('main').innerText();
  expect(offered.includes('تم توقيع الوكالة') && offered.includes('The power of attorney is signed'), `the notary's signed page: ${offered}`);
  await arPage.screenshot({ path: `${out}/demo-sign-signed-ar.png`, fullPage: true });
  const [attorney] = await Promise.all([arPage.waitForEvent('download'), arPage.click('#download')]);
  const attorneyPath = `${out}/power-of-attorney-signed.pdf`;
  await attorney.saveAs(attorneyPath);
  const attorneyBytes = fs.readFileSync(attorneyPath);
  expect(attorneyBytes.subarray(0, 4).toString('latin1') === '%PDF', 'the download is a PDF');
  const attorneyText = attorneyBytes.toString('latin1');
  expect(attorneyText.includes('/ETSI.CAdES.detached') && attorneyText.includes('(I, Sami Khalil, appoint the bearer'),
    'the download is the power of attorney for the citizen, with a PAdES signature');
  await arabic.close();
  console.log('ok: demo-sign');

  // Anyone (no login) verifies the PDF signed above on /verify, in Arabic (the default) and in
  // English: the verdict names TOTAL-PASSED and the signer; a copy with one byte of the signed
  // text changed fails on its digest.
  const tampered = Buffer.from(signed);
  const at = tampered.indexOf(Buffer.from('Hawiya'));
  expect(at > 0 && at < original.length, 'the sample text is in the signed revision');
  tampered[at] = 'X'.charCodeAt(0);
  const tamperedPath = `${out}/signed-in-browser-tampered.pdf`;
  fs.writeFileSync(tamperedPath, tampered);
  for (const [lang, locale, valid] of [['ar', 'ar', 'التوقيع صالح'], ['en', 'en-GB', 'The signature is valid']]) {
    const context = await browser.newContext({ locale });
    const page = await context.newPage();
    await page.goto(`${base}/verify`);
    expect(await page.locator('html').getAttribute('lang') === lang, `the verification page follows Accept-Language (${lang})`);
    expect(await page.locator('html').getAttribute('dir') === (lang === 'ar' ? 'rtl' : 'ltr'), `the verification page's direction (${lang})`);
    await page.setInputFiles('#file', saved);
    await page.click('form[action="/verify"] button');
    await page.waitForSelector('#verdict');
    const verdict = await page.locator('#verdict').innerText();
    expect(verdict.includes(valid) && verdict.includes('TOTAL-PASSED') && verdict.includes('PAdES-BASELINE-LT') && verdict.includes(SMART_ID_CITIZEN),
      `the verdict on the signed PDF (${lang}): ${verdict}`);
    expect(lang === 'ar' || verdict.includes('Sami'), `the signer's name (${lang}): ${verdict}`);
    const details = await page.locator('main').innerText();
    expect(details.includes('Hawiya National Root CA') && /(ocsp|crl) good/.test(details), `the details name the chain and the revocation evidence (${lang}): ${details}`);
    await page.screenshot({ path: `${out}/verify-passed-${lang}.png`, fullPage: true });
    await page.goto(`${base}/verify`);
    await page.setInputFiles('#file', tamperedPath);
    await page.click('form[action="/verify"] button');
    await page.waitForSelector('#verdict');
    const failed = await page.locator('#verdict').innerText();
    expect(failed.includes('TOTAL-FAILED') && failed.includes('HASH_FAILURE') && !failed.includes('TOTAL-PASSED'), `the verdict on the changed PDF (${lang}): ${failed}`);
    await page.screenshot({ path: `${out}/verify-failed-${lang}.png`, fullPage: true });
    await context.close();
  }
  console.log('ok: verify');
} finally {
  await browser.close();
}
