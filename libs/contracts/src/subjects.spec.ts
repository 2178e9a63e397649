import {
  InvalidSubjectTokenError,
  isPackSubject,
  SubjectFilters,
  Subjects,
  subjectMatcher,
} from './subjects';

describe('subjectMatcher', () => {
  it('matches a trailing > against one or more tokens, as nats-server does', () => {
    const raw = subjectMatcher([SubjectFilters.raw]);
    expect(raw(Subjects.raw('acme', 'd1'))).toBe(true);
    expect(raw('iot.raw.v1.acme')).toBe(true);
    expect(raw('iot.raw.v1')).toBe(false);
    expect(raw('iot.raw.v1.')).toBe(false);
    expect(raw(Subjects.status('acme', 'd1'))).toBe(false);
    expect(raw('iot.raw.v10.acme.d1')).toBe(false);
  });

  it('matches * against exactly one token, also before a trailing >', () => {
    const oneTenant = subjectMatcher(['iot.*.v1.acme.*']);
    expect(oneTenant(Subjects.raw('acme', 'd1'))).toBe(true);
    expect(oneTenant(Subjects.status('acme', 'd1'))).toBe(true);
    expect(oneTenant(Subjects.raw('other', 'd1'))).toBe(false);
    expect(oneTenant('iot.raw.v1.acme.d1.extra')).toBe(false);
    const anyKind = subjectMatcher(['iot.*.v1.>']);
    expect(anyKind(Subjects.decoded('acme', 'd1'))).toBe(true);
    expect(anyKind('iot.raw.v1')).toBe(false);
    expect(anyKind('iot.raw.v2.acme.d1')).toBe(false);
  });

  it('takes any of several filters, and none of none', () => {
    const either = subjectMatcher([SubjectFilters.raw, SubjectFilters.status]);
    expect(either(Subjects.status('acme', 'd1'))).toBe(true);
    expect(either(Subjects.decoded('acme', 'd1'))).toBe(false);
    expect(subjectMatcher([])(Subjects.raw('acme', 'd1'))).toBe(false);
  });
});

describe('pack subjects (docs/adr/0011)', () => {
  it("sit under the normalized filter and a tenant's, and no device can be named like one", () => {
    const pack = Subjects.normalizedPack('acme');
    expect(pack).toBe('iot.normalized.v1.acme.~pack');
    expect(isPackSubject(pack)).toBe(true);
    expect(subjectMatcher([SubjectFilters.normalized])(pack)).toBe(true);
    expect(subjectMatcher(['iot.normalized.v1.acme.>'])(pack)).toBe(true);
    expect(isPackSubject(Subjects.normalized('acme', 'pack'))).toBe(false);
    expect(() => Subjects.normalized('acme', '~pack')).toThrow(InvalidSubjectTokenError);
  });

  it('of decoded messages sit under the decoded filter, where the normalizer reads', () => {
    const pack = Subjects.decodedPack('acme');
    expect(pack).toBe('iot.decoded.v1.acme.~pack');
    expect(isPackSubject(pack)).toBe(true);
    expect(subjectMatcher([SubjectFilters.decoded])(pack)).toBe(true);
    expect(subjectMatcher([SubjectFilters.normalized])(pack)).toBe(false);
  });
});
