/* The form that edits a tool call's arguments, one field per property of its JSON Schema
 * (a JSON text field for what the schema does not describe). */
import { button, formatJSON, isPlainObject, make, uid } from './dom.js';

const TEXTAREA_KEYS = /^(body|content|text|message|description|comment|notes?|html|markdown|summary|details)$/i;

export function schemaProperties(schema) {
  const root = isPlainObject(schema) ? schema : null;
  return root && isPlainObject(root.properties) ? root.properties : null;
}

function resolveRef(schema, root) {
  let s = schema;
  for (let i = 0; i < 5 && isPlainObject(s) && typeof s.$ref === 'string'; i += 1) {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
    const defs = m && isPlainObject(root) ? root[m[1]] : null;
    const target = defs && isPlainObject(defs) ? defs[m[2]] : null;
    if (!target) break;
    const { $ref, ...rest } = s;
    s = { ...target, ...rest };
  }
  return isPlainObject(s) ? s : {};
}

// The field a property gets: {kind, nullable, schema} with anyOf/oneOf/type lists unwrapped.
function fieldSpec(propSchema, root) {
  let s = resolveRef(propSchema, root);
  let nullable = false;
  const variants = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : null;
  if (variants) {
    const resolved = variants.map((v) => resolveRef(v, root));
    const nonNull = resolved.filter((v) => v.type !== 'null');
    nullable = nonNull.length < resolved.length;
    const { anyOf, oneOf, ...outer } = s;
    s = nonNull.length === 1 ? { ...nonNull[0], ...outer } : { ...outer, type: nonNull.length ? undefined : 'null' };
    if (nonNull.length > 1) return { kind: 'json', nullable, schema: s };
  }
  let type = s.type;
  if (Array.isArray(type)) {
    nullable = nullable || type.includes('null');
    const rest = type.filter((t) => t !== 'null');
    type = rest.length === 1 ? rest[0] : undefined;
  }
  let kind = 'json';
  if (Array.isArray(s.enum) && s.enum.length && s.enum.every((v) => typeof v === 'string')) kind = 'enum';
  else if (type === 'string') kind = s.format === 'date' ? 'date' : 'string';
  else if (type === 'integer' || type === 'number') kind = type;
  else if (type === 'boolean') kind = 'boolean';
  return { kind, nullable, schema: s };
}

// `busy()`: a decision is on its way, and Send does nothing; `onSubmit(edit)` gets
// {args} or {args, comment} once every field reads as valid.
export function buildEditForm(approval, { busy, onSubmit, onCancel }) {
  const form = make('form', 'edit-form');
  const root = isPlainObject(approval.args_schema) ? approval.args_schema : null;
  const props = schemaProperties(root);
  const args = isPlainObject(approval.args) ? approval.args : {};
  const required = new Set(root && Array.isArray(root.required) ? root.required.map(String) : []);
  const fields = [];

  form.append(make('p', 'edit-intro', 'Change the arguments, then send them. The assistant will use your version.'));

  if (props) {
    for (const [key, propSchema] of Object.entries(props)) {
      const spec = fieldSpec(propSchema, root);
      fields.push(buildEditField(form, key, spec, args, required.has(key)));
    }
  } else {
    // No schema: edit the whole arguments object as JSON.
    const spec = { kind: 'json', nullable: false, schema: { type: 'object', title: 'Arguments (JSON)' } };
    const field = buildEditField(form, '', spec, { '': args }, true);
    field.whole = true;
    fields.push(field);
  }
  const extras = props ? Object.keys(args).filter((k) => !Object.prototype.hasOwnProperty.call(props, k)) : [];

  const commentId = uid('edit-comment');
  const cWrap = make('div', 'edit-field');
  const cLabel = make('label', 'field-label', 'Comment (optional)');
  cLabel.htmlFor = commentId;
  const comment = make('textarea', 'field-input edit-comment');
  comment.id = commentId;
  comment.rows = 2;
  comment.maxLength = 2000;
  cWrap.append(cLabel, comment);
  form.append(cWrap);

  const row = make('div', 'card-actions');
  const submit = make('button', 'btn btn-primary btn-small submit-edit-btn', 'Send edited version');
  submit.type = 'submit';
  const cancel = button('btn btn-quiet btn-small cancel-edit-btn', 'Cancel');
  cancel.addEventListener('click', onCancel);
  row.append(submit, cancel);
  form.append(row);

  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      onCancel();
    }
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (busy()) return;
    let out = {};
    for (const k of extras) out[k] = args[k];
    let firstBad = null;
    for (const field of fields) {
      const result = field.read();
      if (result.error) {
        field.setError(result.error);
        if (!firstBad) firstBad = field;
        continue;
      }
      field.setError('');
      if (field.whole) out = result.value;
      else if (result.value !== undefined) out[field.key] = result.value;
    }
    if (firstBad) {
      firstBad.control.focus();
      return;
    }
    if (!isPlainObject(out)) {
      fields[0].setError('The arguments must be a JSON object.');
      fields[0].control.focus();
      return;
    }
    const text = comment.value.trim();
    onSubmit(text ? { args: out, comment: text } : { args: out });
  });
  return form;
}

function buildEditField(form, key, spec, args, isRequired) {
  const { kind, nullable, schema } = spec;
  const fieldId = uid('edit-field');
  const wrap = make('div', `edit-field edit-field-${kind}`);
  wrap.dataset.arg = key;
  const has = Object.prototype.hasOwnProperty.call(args, key);
  let value = has ? args[key] : schema.default;
  if (value === undefined) value = null;

  const label = make('label', 'field-label', schema.title && typeof schema.title === 'string' ? schema.title : key || 'Arguments');
  label.htmlFor = fieldId;
  if (key && schema.title && schema.title.toLowerCase() !== key.toLowerCase()) {
    label.append(make('span', 'field-key', ` (${key})`));
  }
  if (isRequired && kind !== 'boolean') {
    const mark = make('span', 'field-required', ' *');
    mark.setAttribute('aria-hidden', 'true');
    label.append(mark);
  }
  const describedBy = [];
  let hint = null;
  if (typeof schema.description === 'string' && schema.description) {
    hint = make('p', 'field-hint', schema.description);
    hint.id = uid('edit-hint');
    describedBy.push(hint.id);
  }
  const errorEl = make('p', 'field-error');
  errorEl.id = uid('edit-error');
  errorEl.hidden = true;
  errorEl.setAttribute('aria-live', 'polite');

  let control;
  if (kind === 'boolean') {
    control = make('input', 'field-check');
    control.type = 'checkbox';
    control.checked = value === true;
  } else if (kind === 'enum') {
    control = make('select', 'field-input');
    if (!isRequired || nullable) control.append(make('option', '', '—'));
    for (const opt of schema.enum) {
      const o = make('option', '', opt);
      o.value = opt;
      control.append(o);
    }
    control.value = typeof value === 'string' ? value : '';
  } else if (kind === 'integer' || kind === 'number') {
    control = make('input', 'field-input');
    control.type = 'number';
    control.step = kind === 'integer' ? '1' : 'any';
    if (typeof schema.minimum === 'number') control.min = String(schema.minimum);
    if (typeof schema.maximum === 'number') control.max = String(schema.maximum);
    control.value = typeof value === 'number' ? String(value) : '';
  } else if (kind === 'date') {
    control = make('input', 'field-input');
    control.type = 'date';
    control.value = typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? value.slice(0, 10) : '';
  } else if (kind === 'string') {
    const text = value === null ? '' : typeof value === 'string' ? value : formatJSON(value);
    const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : null;
    const long = TEXTAREA_KEYS.test(key) || text.includes('\n') || text.length > 120 || (maxLength !== null && maxLength > 5000);
    if (long) {
      control = make('textarea', 'field-input field-long');
      control.rows = Math.min(12, Math.max(4, text.split('\n').length + 1));
    } else {
      control = make('input', 'field-input');
      control.type = schema.format === 'email' ? 'email' : 'text';
      if (schema.format === 'email') control.autocomplete = 'off';
    }
    control.value = text;
    if (maxLength !== null && maxLength >= 0) control.maxLength = maxLength;
    if (typeof schema.minLength === 'number' && schema.minLength > 0) control.minLength = schema.minLength;
  } else {
    control = make('textarea', 'field-input field-json');
    const text = value === null && !has ? '' : JSON.stringify(value, null, 2);
    control.value = text;
    control.rows = Math.min(12, Math.max(3, text.split('\n').length + 1));
    control.spellcheck = false;
    describedBy.push(errorEl.id);
  }
  control.id = fieldId;
  control.name = key || 'args';
  if (isRequired && kind !== 'boolean') control.required = true;
  if (kind !== 'json') describedBy.push(errorEl.id);
  if (describedBy.length) control.setAttribute('aria-describedby', describedBy.join(' '));

  if (kind === 'boolean') {
    const line = make('div', 'field-check-row');
    line.append(control, label);
    wrap.append(line);
  } else {
    wrap.append(label, control);
  }
  if (hint) wrap.append(hint);
  wrap.append(errorEl);
  form.append(wrap);

  const blank = () => {
    if (nullable) return { value: null };
    if (!isRequired && !has) return { value: undefined };
    return null;
  };

  const read = () => {
    if (kind === 'boolean') return { value: control.checked };
    const raw = control.value;
    if (kind === 'json') {
      if (!raw.trim()) {
        if (isRequired) return { error: 'This field is required (JSON).' };
        return blank() || { value: undefined };
      }
      let parsed;
      try {
        parsed = JSON.parse(raw);
      } catch (err) {
        return { error: `This is not valid JSON: ${err && err.message ? err.message : 'syntax error'}` };
      }
      const t = schema.type;
      if (t === 'object' && !isPlainObject(parsed)) return { error: 'This must be a JSON object, like {"key": "value"}.' };
      if (t === 'array' && !Array.isArray(parsed)) return { error: 'This must be a JSON array, like [1, 2].' };
      return { value: parsed };
    }
    if (kind === 'integer' || kind === 'number') {
      if (raw.trim() === '') {
        if (isRequired) return { error: 'This field is required.' };
        return blank() || { value: undefined };
      }
      const n = Number(raw);
      if (!Number.isFinite(n)) return { error: 'Enter a number.' };
      if (kind === 'integer' && !Number.isInteger(n)) return { error: 'Enter a whole number.' };
      return { value: n };
    }
    if (raw === '') {
      if (isRequired) return { error: 'This field is required.' };
      return blank() || { value: kind === 'string' ? '' : undefined };
    }
    if (typeof schema.maxLength === 'number' && Array.from(raw).length > schema.maxLength) {
      return { error: `At most ${schema.maxLength} characters.` };
    }
    return { value: raw };
  };

  const setError = (text) => {
    errorEl.textContent = text;
    errorEl.hidden = !text;
    if (text) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  };
  control.addEventListener('input', () => {
    if (!errorEl.hidden) setError('');
  });
  return { key, control, read, setError };
}
