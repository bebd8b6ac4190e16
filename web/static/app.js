// app.js: the switchboard web page. It signs in with a Matrix OpenID token
// and then talks only to the bridge's provisioning API
// (docs/provisioning.md). The token lives in this page's memory only.
'use strict';
(function () {
  var API = new URL('../provision/v1/', document.baseURI).href;
  var HS = (document.querySelector('meta[name="switchboard-homeserver"]') || {}).content || '';
  var session = null; // {user, token, active: true once whoami answered}
  var poll = null; // AbortController of a running login poll

  function $(id) { return document.getElementById(id); }
  function show(el, on) { el.hidden = !on; }

  // say shows a message: in the feedback line of scope (the section the
  // user is working in, so it shows next to what they did), else at the
  // top of the page. Older messages are cleared.
  function say(text, bad, scope) {
    $('status').textContent = '';
    $('error').textContent = '';
    document.querySelectorAll('.feedback').forEach(function (el) { el.textContent = ''; });
    var el = scope && scope.querySelector('.feedback');
    if (el) {
      el.classList.toggle('bad', !!bad);
      el.textContent = text || '';
    } else {
      $(bad ? 'error' : 'status').textContent = text || '';
    }
  }
  function status(text, scope) { say(text, false, scope); }
  function fail(text, scope) { if (text) say(text, true, scope); }

  // busy disables a form's (or a button's) controls while work runs.
  function busy(el, on) {
    var controls = el.tagName === 'FORM' ? el.querySelectorAll('button, input, select') : [el];
    controls.forEach(function (c) { c.disabled = on; });
  }

  function ApiError(status, body) {
    this.status = status;
    this.errcode = body && body.errcode || 'SB_UNKNOWN';
    this.message = body && body.error || 'The bridge answered ' + status + '.';
  }

  // api calls the provisioning API as the signed-in user.
  function api(method, path, body, signal) {
    var url = new URL(path, API);
    url.searchParams.set('user_id', session.user);
    var init = {
      method: method,
      headers: { 'Authorization': 'Bearer openid:' + session.token },
      credentials: 'omit',
      cache: 'no-store',
      signal: signal
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) {
          var err = new ApiError(resp.status, data);
          if (resp.status === 401 && session && session.active) {
            expired();
            err.handled = true; // the page already says so
          }
          throw err;
        }
        return data;
      });
    });
  }

  function message(err) {
    if (err && (err.name === 'AbortError' || err.handled)) return '';
    if (err instanceof ApiError) return err.message;
    return 'The bridge could not be reached: ' + (err && err.message || err);
  }

  // --- signing in ---------------------------------------------------------

  // homeserver calls the user's homeserver's client-server API (password
  // sign-in only).
  function homeserver(method, path, token, body) {
    var init = { method: method, headers: { 'Content-Type': 'application/json' }, credentials: 'omit', cache: 'no-store', body: JSON.stringify(body || {}) };
    if (token) init.headers['Authorization'] = 'Bearer ' + token;
    return fetch(HS.replace(/\/+$/, '') + path, init).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new Error(data.error || 'the homeserver answered ' + resp.status);
        return data;
      });
    });
  }

  function validUser(user) { return /^@[^:\s]+:\S+$/.test(user); }

  function signIn(user, token) {
    session = { user: user, token: token };
    return api('GET', 'whoami').then(function (who) {
      session.active = true;
      $('account-user').textContent = who.user_id;
      show($('signin'), false);
      show($('account'), true);
      show($('app'), true);
      render(who);
      status('Signed in as ' + who.user_id + '.');
      $('networks-title').focus();
    }, function (err) {
      session = null;
      throw err;
    });
  }

  $('password-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var form = ev.target, user = $('pw-user').value.trim(), password = $('pw-password').value;
    if (!validUser(user)) { fail('Enter your full Matrix ID, like @alice:example.org.'); return; }
    busy(form, true);
    status('Signing in at your homeserver…');
    var access = null;
    homeserver('POST', '/_matrix/client/v3/login', null, {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: user },
      password: password,
      initial_device_display_name: 'switchboard web page (signs out at once)'
    }).then(function (login) {
      access = login.access_token;
      user = login.user_id || user;
      return homeserver('POST', '/_matrix/client/v3/user/' + encodeURIComponent(user) + '/openid/request_token', access, {});
    }).then(function (openid) {
      // The password session was only needed for the OpenID token.
      var token = openid.access_token;
      return homeserver('POST', '/_matrix/client/v3/logout', access, {}).catch(function () {}).then(function () {
        access = null;
        return signIn(user, token);
      });
    }).catch(function (err) {
      if (access) homeserver('POST', '/_matrix/client/v3/logout', access, {}).catch(function () {});
      fail('Could not sign in: ' + message(err));
    }).then(function () {
      $('pw-password').value = '';
      busy(form, false);
    });
  });

  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var form = ev.target, user = $('tok-user').value.trim(), token = $('tok-token').value.trim();
    if (!validUser(user)) { fail('Enter your full Matrix ID, like @alice:example.org.'); return; }
    busy(form, true);
    status('Signing in…');
    signIn(user, token).catch(function (err) {
      fail('Could not sign in: ' + message(err));
    }).then(function () {
      $('tok-token').value = '';
      busy(form, false);
    });
  });

  function signOut(text) {
    if (poll) poll.abort();
    session = null;
    show($('app'), false);
    show($('account'), false);
    show($('signin'), true);
    $('networks-body').textContent = '';
    $('links-list').textContent = '';
    show($('wa-step'), false);
    status(text);
  }
  function expired() { signOut(''); fail('Your sign-in expired. Please sign in again.'); }

  $('signout').addEventListener('click', function () { signOut('Signed out.'); $('signin-title').focus(); });

  // --- what the user sees -------------------------------------------------

  var NAMES = { matrix: 'Matrix', whatsapp: 'WhatsApp', sms: 'SMS' };
  function networkName(id) { return NAMES[id] || id; }

  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function render(who) {
    var body = $('networks-body');
    body.textContent = '';
    var wa = null;
    (who.networks || []).forEach(function (n) {
      var tr = document.createElement('tr');
      var th = document.createElement('th');
      th.scope = 'row';
      th.textContent = networkName(n.id);
      tr.appendChild(th);
      cell(tr, n.state, 'state-' + n.state);
      var login = '—';
      if (n.id === 'whatsapp') {
        wa = n;
        login = n.login ? n.login.state + (n.login.detail ? ' (' + n.login.detail + ')' : '') : 'not logged in';
      } else if (n.id === 'matrix') {
        login = who.user_id;
      }
      cell(tr, login, n.id === 'whatsapp' && n.login ? 'state-' + n.login.state : '');
      body.appendChild(tr);
    });
    renderWhatsApp(wa);
    renderLinks(who.links || []);
    renderPrefs(who.preferences || {});
  }

  function renderWhatsApp(wa) {
    show($('whatsapp'), !!wa);
    if (!wa) return;
    var loggedIn = !!(wa.login && wa.login.state !== 'logged_out');
    var pending = !!(wa.login && wa.login.in_progress) || !!poll;
    $('wa-state').textContent = loggedIn
      ? 'Your WhatsApp account is linked to the bridge (' + wa.login.state + ').'
      : 'Link your WhatsApp account to chat with your WhatsApp contacts from Matrix.';
    show($('wa-login-controls'), !loggedIn && !pending);
    show($('wa-logout'), loggedIn);
    var flows = wa.login_flows || [];
    show($('wa-qr'), flows.indexOf('qr') >= 0);
    show($('wa-pair-form'), flows.indexOf('pairing_code') >= 0);
  }

  function renderLinks(links) {
    var list = $('links-list');
    list.textContent = '';
    if (!links.length) {
      var li = document.createElement('li');
      li.textContent = 'No phone number linked yet.';
      list.appendChild(li);
      return;
    }
    links.forEach(function (l) {
      var item = document.createElement('li');
      item.textContent = l.number + (l.verified_at ? ' — verified ' + new Date(l.verified_at).toLocaleString() : '');
      list.appendChild(item);
    });
  }

  var prefs = {};
  function renderPrefs(p) {
    prefs = { sms: !!p.sms, reveal: !!p.reveal, prefer: p.prefer || '' };
    $('pref-sms').checked = prefs.sms;
    $('pref-reveal').checked = prefs.reveal;
    $('pref-prefer').value = prefs.prefer;
  }

  function refresh() {
    return api('GET', 'whoami').then(render);
  }

  $('refresh').addEventListener('click', function (ev) {
    busy(ev.target, true);
    refresh().then(function () { status('Up to date.', $('networks')); }, function (err) { fail(message(err), $('networks')); })
      .then(function () { busy(ev.target, false); });
  });

  // --- WhatsApp login -----------------------------------------------------

  function showStep(step) {
    show($('wa-step'), true);
    $('wa-step-text').textContent = step.text || '';
    var canvas = $('wa-qr-canvas');
    if (step.type === 'qr' && step.payload) {
      window.SwitchboardQR.draw(canvas, step.payload);
      show(canvas, true);
    } else if (step.type !== 'waiting') {
      show(canvas, false);
    }
    var code = $('wa-code');
    if (step.type === 'code' && step.payload) {
      code.textContent = step.payload;
      show(code, true);
    } else if (step.type === 'done' || step.type === 'error') {
      show(code, false);
    }
  }

  function follow(login) {
    poll = new AbortController();
    var signal = poll.signal, seq = login.seq;
    showStep(login.step);
    function next() {
      if (signal.aborted) return;
      api('GET', 'login/whatsapp/' + encodeURIComponent(login.login_id) + '?since=' + seq + '&wait=25', undefined, signal).then(function (r) {
        if (r.seq !== seq) { seq = r.seq; showStep(r.step); }
        if (r.done) {
          poll = null;
          if (r.step.type === 'done') status(r.step.text || 'WhatsApp is linked.', $('whatsapp'));
          else fail(r.step.text || 'The login failed.', $('whatsapp'));
          return refresh();
        }
        next();
      }, function (err) {
        poll = null;
        var text = message(err);
        if (text) fail(text, $('whatsapp'));
      });
    }
    next();
  }

  function startLogin(body, control) {
    busy(control, true);
    var scope = $('whatsapp');
    status('Asking WhatsApp for a login…', scope);
    api('POST', 'login/whatsapp', body).then(function (login) {
      status('', scope);
      show($('wa-login-controls'), false);
      follow(login);
    }, function (err) {
      fail(message(err), scope);
    }).then(function () { busy(control, false); });
  }

  $('wa-qr').addEventListener('click', function (ev) { startLogin({ method: 'qr' }, ev.target); });
  $('wa-pair-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    startLogin({ method: 'pairing_code', phone: $('wa-phone').value }, ev.target);
  });
  $('wa-logout').addEventListener('click', function (ev) {
    busy(ev.target, true);
    api('POST', 'logout/whatsapp', {}).then(function (r) {
      status(r.message, $('whatsapp'));
      show($('wa-step'), false);
      return refresh();
    }).catch(function (err) { fail(message(err), $('whatsapp')); }).then(function () { busy(ev.target, false); });
  });

  // --- numbers ------------------------------------------------------------

  function submitter(formId, run) {
    $(formId).addEventListener('submit', function (ev) {
      ev.preventDefault();
      var form = ev.target, scope = form.closest('section');
      busy(form, true);
      run(scope).catch(function (err) { fail(message(err), scope); }).then(function () { busy(form, false); });
    });
  }

  submitter('link-form', function (scope) {
    return api('POST', 'link', { phone: $('link-phone').value }).then(function (r) {
      status(r.message, scope);
      $('link-phone').value = '';
      $('verify-code').focus();
    });
  });
  submitter('verify-form', function (scope) {
    return api('POST', 'verify', { code: $('verify-code').value.replace(/\s+/g, '') }).then(function (r) {
      if (r.linked) status(r.message, scope); else fail(r.message, scope);
      $('verify-code').value = '';
      if (r.links) renderLinks(r.links);
    });
  });
  submitter('unlink-form', function (scope) {
    return api('POST', 'unlink', { phone: $('unlink-phone').value }).then(function (r) {
      status(r.message, scope);
      $('unlink-phone').value = '';
      if (r.links) renderLinks(r.links);
    });
  });

  // --- preferences --------------------------------------------------------

  submitter('prefs-form', function (scope) {
    var want = { sms: $('pref-sms').checked, reveal: $('pref-reveal').checked, prefer: $('pref-prefer').value };
    var change = {};
    Object.keys(want).forEach(function (k) { if (want[k] !== prefs[k]) change[k] = want[k]; });
    if (!Object.keys(change).length) { status('Nothing to change.', scope); return Promise.resolve(); }
    if (change.prefer === '') change.prefer = 'matrix'; // no preference means Matrix
    return api('PUT', 'preferences', change).then(function (r) {
      renderPrefs(r.preferences);
      status((r.messages || []).join('\n') || 'Saved.', scope);
    });
  });

  // --- start --------------------------------------------------------------

  if (HS) {
    $('hs-origin').textContent = new URL(HS).origin;
    show($('password-form'), true);
  } else {
    $('token-details').open = true;
  }
  $('networks-title').tabIndex = -1;
  $('signin-title').tabIndex = -1;
})();
