/**
 * The policy editor's parts: every setting of the product's policy type, generated from its
 * schema (the task settings form, one setting at a time, so that each gets its own "set in
 * this policy" switch and, where the type allows it, a lock; shapes the generator does not know
 * are edited as JSON in place), the profiles with their conditions, and the preview of which
 * devices a change would change and how.
 */
import { useState } from 'react';
import { Link } from 'wouter';
import type { PolicyPreview, PolicyProfile } from '@garrison/protocol';
import { Empty, Field, Section } from '../ui.tsx';
import { ListInput, NumberInput } from '../tasks/controls.tsx';
import { SchemaForm } from '../tasks/SchemaForm.tsx';
import { labelOf } from '../tasks/schema.ts';
import { newProfile, settingsOf, valueText, withLock, withSetting, type PolicyType } from './model.ts';
import './policies.css';

interface SettingsValue {
  settings: Record<string, unknown>;
  locked: string[];
}

/**
 * Each setting of the type: set here (its control, and a lock where the type allows one) or
 * not set (inherited: the value of the policy above, else the default shown).
 */
export function PolicySettingsForm({ type, value, onChange, where = 'this policy' }: { type: PolicyType; value: SettingsValue; onChange: (v: SettingsValue) => void; where?: string }) {
  return (
    <div className="policy-settings">
      {settingsOf(type).map(([key, schema]) => {
        const label = labelOf(key, schema);
        const isSet = key in value.settings;
        const lockable = type.lockable.includes(key);
        const locked = value.locked.includes(key);
        return (
          <fieldset key={key} className={`policy-setting ${isSet ? 'is-set' : ''}`}>
            <legend>{label}</legend>
            <div className="policy-setting-switches">
              <label className="check">
                <input
                  type="checkbox"
                  checked={isSet}
                  aria-label={`Set ${label} in ${where}`}
                  onChange={(e) => onChange(withSetting(value, key, e.target.checked ? structuredClone(type.defaults[key]) : undefined))}
                />
                Set in {where}
              </label>
              {lockable ? (
                <label className="check">
                  <input type="checkbox" checked={locked} disabled={!isSet} aria-label={`Lock ${label}`} onChange={(e) => onChange(withLock(value, key, e.target.checked))} />
                  Locked <span className="muted small">(groups below and the device's user cannot change it)</span>
                </label>
              ) : (
                <span className="muted small">cannot be locked</span>
              )}
            </div>
            {isSet ? (
              <SchemaForm
                schema={{ type: 'object', properties: { [key]: schema }, required: [key] }}
                value={{ [key]: value.settings[key] }}
                onChange={(o) => onChange(withSetting(value, key, o[key] === undefined ? null : o[key]))}
                secrets={undefined}
              />
            ) : (
              <p className="muted small">
                Inherited: the value of the policy above, else the default <code>{valueText(type.defaults[key])}</code>.
              </p>
            )}
          </fieldset>
        );
      })}
    </div>
  );
}

/** The profiles of a policy: name, priority, enabled, condition, and their own settings and locks. */
export function ProfilesEditor({ type, profiles, onChange }: { type: PolicyType; profiles: PolicyProfile[]; onChange: (p: PolicyProfile[]) => void }) {
  const [open, setOpen] = useState<string | null>(null);
  const set = (i: number, p: PolicyProfile) => onChange(profiles.map((x, j) => (j === i ? p : x)));
  return (
    <Section
      title="Profiles"
      actions={
        <button
          type="button"
          onClick={() => {
            const p = newProfile(profiles);
            onChange([...profiles, p]);
            setOpen(p.id);
          }}
        >
          Add profile
        </button>
      }
    >
      <p className="muted">A profile is a variant of this policy, active on the devices that match its condition; several active profiles apply in ascending priority, the highest last. An empty condition matches no device.</p>
      {profiles.length === 0 ? <Empty>No profiles.</Empty> : null}
      {profiles.map((p, i) => {
        const c = p.condition;
        const shown = open === p.id;
        return (
          <fieldset key={p.id} className="policy-profile">
            <legend>
              {p.name} <span className="muted small">priority {p.priority}{p.enabled ? '' : ', disabled'}</span>
            </legend>
            <div className="form-row">
              <Field label="Profile name">
                <input value={p.name} required maxLength={200} onChange={(e) => set(i, { ...p, name: e.target.value })} />
              </Field>
              <Field label="Priority" hint="0 to 1000; higher applies later">
                <NumberInput integer min={0} max={1000} required value={p.priority} onChange={(v) => set(i, { ...p, priority: v ?? 0 })} />
              </Field>
              <Field label="Enabled" inline>
                <input type="checkbox" checked={p.enabled} onChange={(e) => set(i, { ...p, enabled: e.target.checked })} />
              </Field>
            </div>
            <div className="form-row">
              <Field label="Device tags" hint="comma-separated; the device must have all of them" optional>
                <ListInput value={c.tags ?? []} onChange={(v) => set(i, { ...p, condition: { ...c, ...(v.length ? { tags: v } : { tags: undefined }) } })} />
              </Field>
              <Field label="Operating systems" hint="comma-separated: windows, linux, macos" optional>
                <ListInput value={c.os ?? []} onChange={(v) => set(i, { ...p, condition: { ...c, ...(v.length ? { os: v } : { os: undefined }) } })} />
              </Field>
              <Field label="Device name pattern" hint="* and ? wildcards" optional>
                <input value={c.namePattern ?? ''} onChange={(e) => set(i, { ...p, condition: { ...c, namePattern: e.target.value || undefined } })} />
              </Field>
              <Field label="Installed product" optional>
                <input value={c.product ?? ''} onChange={(e) => set(i, { ...p, condition: { ...c, product: e.target.value || undefined } })} />
              </Field>
            </div>
            <div className="actions">
              <button type="button" aria-expanded={shown} onClick={() => setOpen(shown ? null : p.id)}>
                {shown ? 'Hide settings' : `Settings (${Object.keys(p.settings).length} set)`}
              </button>
              <button type="button" className="danger" aria-label={`Remove profile ${p.name}`} onClick={() => onChange(profiles.filter((_, j) => j !== i))}>
                Remove profile
              </button>
            </div>
            {shown ? <PolicySettingsForm type={type} where={`profile ${p.name}`} value={{ settings: p.settings, locked: p.locked }} onChange={(v) => set(i, { ...p, settings: v.settings, locked: v.locked })} /> : null}
          </fieldset>
        );
      })}
    </Section>
  );
}

/** Which devices a change would change, and how: setting, before → after, lock. */
export function PreviewView({ preview }: { preview: PolicyPreview }) {
  return (
    <Section title="Preview">
      <p role="status">
        Reaches {preview.reached.toLocaleString()} {preview.reached === 1 ? 'device' : 'devices'}; changes <strong>{preview.changed.toLocaleString()}</strong>.
        {preview.truncated ? ` The first ${preview.devices.length} are listed.` : ''}
      </p>
      {preview.devices.length === 0 ? (
        <Empty>No device would change.</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Setting</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
                <th scope="col">Lock</th>
              </tr>
            </thead>
            <tbody>
              {preview.devices.flatMap((d) =>
                d.changes.map((c, n) => (
                  <tr key={`${d.deviceId}-${c.setting}`}>
                    <td>{n === 0 ? <Link href={`/devices/${d.deviceId}`}>{d.deviceName}</Link> : null}</td>
                    <td>{c.setting}</td>
                    <td className="mono small">{valueText(c.before)}</td>
                    <td className="mono small">{valueText(c.after)}</td>
                    <td className="small">{c.lockedBefore === c.lockedAfter ? (c.lockedAfter ? 'locked' : '—') : c.lockedAfter ? 'becomes locked' : 'becomes unlocked'}</td>
                  </tr>
                )),
              )}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
