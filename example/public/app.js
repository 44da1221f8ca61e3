// The page's script. The server bundles it with JsSIP (example/browser-bundle.ts) and serves it as /app.js.
import JsSIP from 'jssip'

const NAME = /^[A-Za-z0-9._-]{1,32}$/

const form = {
  register: document.getElementById('register-form'),
  message: document.getElementById('message-form')
}
const el = {
  user: document.getElementById('user'),
  registerButton: document.getElementById('register'),
  unregisterButton: document.getElementById('unregister'),
  status: document.getElementById('status'),
  fields: document.getElementById('message-fields'),
  to: document.getElementById('to'),
  text: document.getElementById('text'),
  messages: document.getElementById('messages'),
  empty: document.getElementById('empty'),
  call: document.getElementById('call'),
  answer: document.getElementById('answer'),
  hangup: document.getElementById('hangup'),
  callStatus: document.getElementById('call-status'),
  remoteAudio: document.getElementById('remote-audio')
}

// Audio only, and no STUN server: the example runs on one machine or a LAN (see the README).
const CALL_OPTIONS = { mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } }

// The SIP domain is only a label here: the example server routes on the user part.
const domain = location.hostname
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`

let ua = null
let session = null

function setStatus (text, state) {
  el.status.textContent = text
  el.status.dataset.state = state
}

function addMessage (direction, peer, text) {
  const item = document.createElement('li')
  item.className = direction
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = direction === 'in' ? `${peer} → you` : `you → ${peer}`
  const body = document.createElement('span')
  body.className = 'text'
  body.textContent = text
  const state = document.createElement('span')
  state.className = 'state'
  if (direction === 'in') state.textContent = new Date().toLocaleTimeString()
  item.append(who, body, state)
  el.messages.append(item)
  el.empty.hidden = true
  item.scrollIntoView({ block: 'nearest' })
  return state
}

function setDelivery (state, text, kind) {
  state.textContent = text
  state.dataset.state = kind
}

function setCall (text, state) {
  el.callStatus.textContent = text
  el.callStatus.dataset.state = state
  el.call.disabled = state === 'calling' || state === 'ringing' || state === 'in-call'
  el.answer.disabled = state !== 'ringing'
  el.hangup.disabled = !(state === 'calling' || state === 'ringing' || state === 'in-call')
}

/** Follows one call, ours or theirs, until it ends. */
function track (call, peer) {
  session = call
  call.on('peerconnection', (e) => {
    e.peerconnection.addEventListener('track', (t) => { el.remoteAudio.srcObject = t.streams[0] })
  })
  call.on('confirmed', () => { setCall(`In a call with ${peer}.`, 'in-call') })
  call.on('ended', (e) => {
    session = null
    setCall(`Call with ${peer} ended (${e.originator === 'local' ? 'you hung up' : e.cause}).`, 'ended')
  })
  call.on('failed', (e) => {
    session = null
    setCall(`Call with ${peer} failed: ${e.message?.status_code ? `${e.message.status_code} ${e.message.reason_phrase}` : e.cause}.`, 'failed')
  })
}

function stop () {
  session?.terminate()
  if (ua === null) return
  const old = ua
  ua = null
  old.removeAllListeners()
  old.stop()
  el.fields.disabled = true
  el.unregisterButton.disabled = true
  el.registerButton.disabled = false
  el.user.disabled = false
}

function start (user) {
  stop()
  const socket = new JsSIP.WebSocketInterface(wsUrl)
  const agent = new JsSIP.UA({
    sockets: [socket],
    uri: `sip:${user}@${domain}`,
    display_name: user,
    register: true,
    register_expires: 300,
    session_timers: false,
    user_agent: 'fastify-sip-ws example page (JsSIP)'
  })
  ua = agent
  el.registerButton.disabled = true
  el.user.disabled = true
  el.unregisterButton.disabled = false

  agent.on('connecting', () => { setStatus(`Connecting to ${wsUrl} …`, 'busy') })
  agent.on('disconnected', () => {
    el.fields.disabled = true
    setStatus('Disconnected from the server; retrying …', 'error')
  })
  agent.on('registered', () => {
    el.fields.disabled = false
    setStatus(`Registered as ${user}.`, 'registered')
    if (el.to.value === '') el.to.focus()
    else el.text.focus()
  })
  agent.on('unregistered', () => {
    el.fields.disabled = true
    setStatus('Not registered.', 'idle')
  })
  agent.on('registrationFailed', (e) => {
    el.fields.disabled = true
    setStatus(`Registration failed: ${e.cause}.`, 'error')
  })
  agent.on('newMessage', (e) => {
    if (e.originator !== 'remote') return
    const from = e.request.from.uri.user ?? e.request.from.toString()
    addMessage('in', from, e.request.body ?? '')
    // Make answering the first message one step shorter.
    if (el.to.value === '') el.to.value = from
  })
  agent.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return
    if (session !== null) {
      e.session.terminate({ status_code: 486, reason_phrase: 'Busy Here' })
      return
    }
    const from = e.request.from.uri.user ?? e.request.from.toString()
    track(e.session, from)
    setCall(`${from} is calling …`, 'ringing')
  })
  agent.start()
}

form.register.addEventListener('submit', (event) => {
  event.preventDefault()
  const user = el.user.value.trim()
  if (!NAME.test(user)) {
    setStatus('Use letters, digits, dot, dash or underscore for your name.', 'error')
    return
  }
  start(user)
})

el.unregisterButton.addEventListener('click', () => {
  stop()
  setStatus('Not registered.', 'idle')
})

form.message.addEventListener('submit', (event) => {
  event.preventDefault()
  const to = el.to.value.trim()
  const text = el.text.value
  if (ua === null || !NAME.test(to) || text === '') return
  const state = addMessage('out', to, text)
  setDelivery(state, 'sending …', 'pending')
  el.text.value = ''
  el.text.focus()
  ua.sendMessage(`sip:${to}@${domain}`, text, {
    contentType: 'text/plain;charset=utf-8',
    eventHandlers: {
      succeeded: () => { setDelivery(state, 'delivered', 'delivered') },
      failed: (e) => {
        const why = e.response ? `${e.response.status_code} ${e.response.reason_phrase}` : e.cause
        setDelivery(state, `not delivered: ${why}`, 'failed')
      }
    }
  })
})

el.call.addEventListener('click', () => {
  const to = el.to.value.trim()
  if (ua === null || session !== null || !NAME.test(to)) return
  setCall(`Calling ${to} …`, 'calling')
  track(ua.call(`sip:${to}@${domain}`, CALL_OPTIONS), to)
})

el.answer.addEventListener('click', () => { session?.answer(CALL_OPTIONS) })
el.hangup.addEventListener('click', () => { session?.terminate() })

addEventListener('pagehide', stop)
