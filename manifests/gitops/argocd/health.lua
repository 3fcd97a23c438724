-- Argo CD health of Conveyor's kinds (conveyor.dev: FeatureSet, TrainingPipeline, ModelVersion,
-- RetrainPolicy), read from status the way kstatus reads it (docs/gitops.md):
--   no status, or status.observedGeneration < metadata.generation -> Progressing
--   Stalled=True -> Degraded;  Degraded=True -> Degraded;  Reconciling=True -> Progressing;
--   Ready=True -> Healthy;  otherwise -> Progressing.
-- Argo CD runs it under gopher-lua (Lua 5.1) with the object as the global `obj`. It never
-- raises: any shape of object gives a health. The same text is in argocd-cm.yaml, once per kind.
local hs = {}

local function get(t, key)
  if type(t) ~= "table" then
    return nil
  end
  return t[key]
end

local function condition(conditions, wanted)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(c, fallback)
  for _, key in ipairs({"message", "reason"}) do
    local value = get(c, key)
    if type(value) == "string" and value ~= "" then
      return value
    end
  end
  return fallback
end

local function whole(n)
  n = tonumber(n)
  if n == nil or n ~= n then
    return nil
  end
  return math.floor(n)
end

local status = get(obj, "status")
local generation = whole(get(get(obj, "metadata"), "generation"))
local observed = whole(get(status, "observedGeneration"))

if type(status) ~= "table" or next(status) == nil
    or (generation ~= nil and observed ~= nil and observed < generation) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. string.format("%d", generation)
  else
    hs.message = "Waiting for the operator to observe the object"
  end
  return hs
end

local conditions = get(status, "conditions")
local stalled = condition(conditions, "Stalled")
local degraded = condition(conditions, "Degraded")
local reconciling = condition(conditions, "Reconciling")
local ready = condition(conditions, "Ready")

if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled, "Stalled: waiting for a change to proceed")
elseif is_true(degraded) then
  hs.status = "Degraded"
  hs.message = text(degraded, "Degraded")
elseif is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = text(reconciling, "Reconciling")
elseif is_true(ready) then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
else
  hs.status = "Progressing"
  hs.message = text(ready, "Waiting for the operator to report Ready")
end
return hs
