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
  empty: document.getElementById('empty')
}

// The SIP domain is only a label here: the example server routes on the user part.
const domain = location.hostname
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`

let ua = null

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

function stop () {
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

addEventListener('pagehide', stop)
